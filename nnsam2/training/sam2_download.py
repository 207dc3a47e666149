"""Official SAM2 / SAM2.1 checkpoints by size (the API under ``nnsam2_download_checkpoint``): where
they are published, the folder they go to, and the check that a file is the checkpoint its name
says before it is kept.

A download goes to ``FOLDER/<official name>.part`` (resumed by the next call after an interrupted
transfer, see :mod:`nnsam2.utils.download`), is read with ``weights_only=True`` and compared with
every tensor name and shape of SAM2's own model of that size and version, and only then renamed to
``FOLDER/<official name>``. A file that fails the check is removed: nothing is left.
"""
import functools
import logging
import os
from typing import Dict, Optional, Tuple

import torch

from nnsam2.network.configs import SIZES
from nnsam2.network.sam2_weights import CheckpointError, read_official_state_dict
from nnsam2.training.run_settings import ENV_CHECKPOINT_DIR
from nnsam2.utils.download import fetch
from nnsam2.utils.nnunet_env import UsageError

logger = logging.getLogger(__name__)

# SAM2_BASE_URL and SAM2p1_BASE_URL of sam2's checkpoints/download_ckpts.sh
# (github.com/facebookresearch/sam2): the file is BASE_URL/<official name>.
OFFICIAL_BASE_URLS = {"2": "https://dl.fbaipublicfiles.com/segment_anything_2/072824",
                      "2.1": "https://dl.fbaipublicfiles.com/segment_anything_2/092824"}
NAME_PREFIXES = {"2": "sam2_hiera_", "2.1": "sam2.1_hiera_"}
DEFAULT_FOLDER = os.path.join("~", ".cache", "nnsam2", "sam2_checkpoints")
PART_SUFFIX = ".part"


def official_sizes() -> Tuple[str, ...]:
    """The SAM2 sizes published as checkpoints (not ``toy``)."""
    return tuple(name for name, cfg in SIZES.items() if cfg.checkpoint_names)


def checkpoint_name(size: str, version: str = "2.1") -> str:
    """The official file name, e.g. ``sam2.1_hiera_tiny.pt`` for ("tiny", "2.1")."""
    if size not in official_sizes():
        raise UsageError(f"no official SAM2 checkpoint of size {size!r}; choose one of "
                         f"{', '.join(official_sizes())}")
    if version not in NAME_PREFIXES:
        raise UsageError(f"SAM2 version must be one of {', '.join(NAME_PREFIXES)}, got {version!r}")
    return next(n for n in SIZES[size].checkpoint_names if n.startswith(NAME_PREFIXES[version]))


def checkpoint_url(size: str, version: str = "2.1", base_url: Optional[str] = None) -> str:
    """``base_url/<official name>``; by default the address sam2's download script uses."""
    base = base_url or OFFICIAL_BASE_URLS[version]
    return f"{base.rstrip('/')}/{checkpoint_name(size, version)}"


def default_folder() -> str:
    """``$nnSAM2_checkpoint_dir`` (where training looks), else ``~/.cache/nnsam2/sam2_checkpoints``."""
    return os.path.expanduser(os.environ.get(ENV_CHECKPOINT_DIR) or DEFAULT_FOLDER)


@functools.lru_cache(maxsize=None)
def expected_tensors(name: str) -> Dict[str, Tuple[int, ...]]:
    """Every tensor name and shape of the official file ``name``: the state dict of SAM2's own
    model built from the config sam2 pairs with that file (``HF_MODEL_ID_TO_FILENAMES``)."""
    from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES, build_sam2
    config = {file: cfg for cfg, file in HF_MODEL_ID_TO_FILENAMES.values()}[name]
    with torch.random.fork_rng(devices=[]):  # the random init leaves the caller's RNG as it was
        model = build_sam2(config, None, device="cpu")
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def verify_checkpoint(path: str, name: str) -> None:
    """CheckpointError unless ``path`` loads with ``weights_only=True`` and holds exactly the
    tensors, names and shapes, of the official file ``name``."""
    state = read_official_state_dict(path)
    expected = expected_tensors(name)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    problems = [f"{len(keys)} {what}, e.g. {keys[0]}" for keys, what in (
        (missing, "tensors missing"), (unexpected, "unexpected tensors"),
        (wrong, "tensors of another shape")) if keys]
    if problems:
        raise CheckpointError(f"{path} is not {name}, perhaps a checkpoint of another SAM2 size "
                              f"or version ({'; '.join(problems)})")


def download_checkpoint(size: str, version: str = "2.1", folder: Optional[str] = None, *,
                        base_url: Optional[str] = None, force: bool = False,
                        progress: Optional[bool] = None, timeout: float = 60.0) -> str:
    """Download the official SAM2 checkpoint of ``size`` into ``folder``; returns its path.

    Args:
        size: ``tiny``, ``small``, ``base_plus`` or ``large``.
        version: ``2.1`` (SAM2.1, ``sam2.1_hiera_<size>.pt``) or ``2`` (``sam2_hiera_<size>.pt``).
        folder: where the file goes (None: :func:`default_folder`).
        base_url: fetch ``base_url/<official name>`` instead (a mirror); None: the official address.
        force: download again even if a verified file is there (it stays until the new one passed).
        progress: progress bar; None: only when stderr is a terminal.
        timeout: seconds to wait for the server to connect or send the next bytes.

    Raises:
        UsageError: unknown size or version, an unusable folder, or the download failed
            (:func:`nnsam2.utils.download.fetch`; an interrupted one keeps its ``.part`` file).
        CheckpointError: the file is not the checkpoint its name says (nothing is kept), or a
            file of that name is already there and is not (it is left alone; ``force`` replaces it).
    """
    name = checkpoint_name(size, version)
    target = os.path.join(os.path.abspath(os.path.expanduser(folder or default_folder())), name)
    if os.path.exists(target) and not force:
        try:
            verify_checkpoint(target, name)
        except CheckpointError as e:
            raise CheckpointError(f"{e}; it was left as it is: download again with --force "
                                  f"(force=True) to replace it") from None
        logger.info("%s is already there and verified: nothing to do (--force downloads it again)",
                    target)
        return target
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the folder {os.path.dirname(target)}: {e.strerror}") from None
    url, part = checkpoint_url(size, version, base_url), target + PART_SUFFIX
    logger.info("downloading %s to %s", url, target)
    fetch(url, part, progress=progress, timeout=timeout)
    try:
        verify_checkpoint(part, name)
    except CheckpointError as e:
        os.remove(part)
        raise CheckpointError(f"refused the download of {url}: {e}; nothing was kept") from None
    os.replace(part, target)
    logger.info("verified %s (every tensor of SAM2 %s %s) and saved it as %s", name, version,
                size, target)
    return target
