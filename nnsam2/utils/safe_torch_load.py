"""Reading checkpoints without running code that a model folder may carry.

nnU-Net loads its checkpoints with ``torch.load(..., weights_only=False)``: unpickling a file
received from someone else can execute anything. nnsam2 reads every file (nnU-Net checkpoints,
official SAM2 checkpoints, frozen stores) with ``weights_only=True`` and an allow-list of exactly
the non-tensor types nnU-Net checkpoints hold (numpy scalars in the training log, the
``torch.device`` in ``init_args``); a file holding anything else is refused, naming the type.
``--allow-pickle`` (``nnSAM2_allow_pickle=1``) loads a trusted legacy nnU-Net checkpoint in full.
Every failure is one line naming the file: torch's own messages run to a dozen lines of advice.
"""
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from typing import List, Optional

import numpy as np
import torch

ENV_ALLOW_PICKLE = "nnSAM2_allow_pickle"

_multiarray = (np._core if hasattr(np, "_core") else np.core).multiarray  # numpy 2 / 1
# numpy reconstructs scalars (np.float64 in nnU-Net's logs and EMA) from a dtype + raw bytes.
ALLOWED_GLOBALS = [np.dtype, _multiarray.scalar, np.ndarray, _multiarray._reconstruct,
                   type(np.dtype(np.float64)), type(np.dtype(np.float32)),
                   type(np.dtype(np.int64)), type(np.dtype(np.bool_)), torch.device]
_ALLOWED_NAMES = {f"{g.__module__}.{g.__qualname__}" for g in ALLOWED_GLOBALS}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used for this model."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that holds types nnU-Net checkpoints never hold (possibly code)."""


def pickle_allowed_by_user() -> bool:
    """The user's ``nnSAM2_allow_pickle`` (for nnU-Net's own commands and Python callers)."""
    return os.environ.get(ENV_ALLOW_PICKLE, "").lower() in ("1", "true", "t", "yes")


def read_weights_only(path: str, kind: str = "checkpoint", advice: str = ""):
    """``torch.load(path, weights_only=True)`` with the allow-list, or one-line errors:
    a folder, an empty, damaged or foreign file, or a refusal naming the types it holds.
    ``kind`` names the file in messages; ``advice`` ends a refusal (e.g. ``--allow-pickle``)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{kind} {path} is a folder, not a checkpoint file")
    if not os.path.isfile(path):
        raise CheckpointError(f"{kind} {path} does not exist")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{kind} {path} is empty (0 bytes): an interrupted copy?")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols, once per load
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals(ALLOWED_GLOBALS):
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not _is_pickle(path):
            raise CheckpointError(f"{kind} {path} cannot be read (not a PyTorch file)") from None
        found = _unsafe_globals(path, str(e))
        if found:
            raise UnsafeCheckpointError(
                f"refused to load {kind} {path}: it holds {', '.join(found)}, which nnU-Net and SAM2 "
                f"checkpoints never hold; unpickling it could run code{advice}") from None
        raise UnsafeCheckpointError(
            f"refused to load {kind} {path}: it holds pickle instructions the safe reader "
            f"refuses ({_torch_reason(str(e))}); unpickling it could run code{advice}") from None
    except Exception as e:  # damaged or foreign files: torch raises many types
        raise CheckpointError(f"{kind} {path} cannot be read ({_damage(path)}): "
                              f"{_torch_reason(str(e)) or type(e).__name__}") from None


def load_nnunet_checkpoint(path: str, allow_pickle: Optional[bool] = None) -> dict:
    """An nnU-Net/nnsam2 checkpoint dict, read without executing code unless ``allow_pickle``
    (None: the ``nnSAM2_allow_pickle`` variable decides)."""
    path = os.fspath(path)
    if (pickle_allowed_by_user() if allow_pickle is None else allow_pickle) and os.path.isfile(path):
        return torch.load(path, map_location="cpu", weights_only=False)
    checkpoint = read_weights_only(path, advice=". If you trust the file (e.g. written by an "
                                   "older nnU-Net or nnsam2), pass --allow-pickle")
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise CheckpointError(f"{path} is not an nnU-Net checkpoint (no 'network_weights')")
    return checkpoint


def _damage(path: str) -> str:
    if zipfile.is_zipfile(path) or _starts_like_zip(path):
        return "a PyTorch file, truncated or damaged"
    return "not a PyTorch file"


def _starts_like_zip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"  # a zip cut short has no central directory


def _unsafe_globals(path: str, message: str) -> List[str]:
    """The importable names the file refers to beyond the allow-list (torch's scan of a zip
    checkpoint, the pickle's own opcodes otherwise), else the name in torch's message."""
    names: List[str] = []
    try:
        if zipfile.is_zipfile(path):
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        else:
            names = _pickle_globals(path)
    except Exception:  # a scan that fails only loses the names; the refusal stands
        pass
    names = [n for n in names if n not in _ALLOWED_NAMES | _torch_allowed_names()]
    if not names:
        found = re.search(r"GLOBAL ([\w.]+)", message)
        names = [found.group(1)] if found else []
    return sorted(set(names))


def _torch_allowed_names() -> set:
    """What torch's safe unpickler accepts by itself (tensor rebuilds, storages, OrderedDict)."""
    try:  # a private helper: losing it only makes the refusal list harmless names too
        from torch._weights_only_unpickler import _get_allowed_globals
        return set(_get_allowed_globals())
    except Exception:
        return set()


def _is_pickle(path: str) -> bool:
    """Whether the file is a zip or starts with a well-formed pickle (read, never run)."""
    if zipfile.is_zipfile(path):
        return True
    try:
        with open(path, "rb") as f:
            for _ in pickletools.genops(f):
                pass
        return True
    except Exception:  # random bytes: an unknown opcode or a truncated argument
        return False


def _pickle_globals(path: str) -> List[str]:
    """``module.name`` of each GLOBAL / STACK_GLOBAL in the pickles of a plain (or legacy torch)
    file, read without running them (STACK_GLOBAL takes the two strings pushed before it)."""
    names, strings = [], []
    with open(path, "rb") as f:
        try:
            while f.peek(1):
                for op, arg, _ in pickletools.genops(f):
                    if op.name == "GLOBAL":
                        names.append(str(arg).replace(" ", "."))
                    elif isinstance(arg, str) and "UNICODE" in op.name:
                        strings.append(arg)
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        names.append(f"{strings[-2]}.{strings[-1]}")
        except Exception:  # a legacy file's raw tensor bytes follow its pickles
            pass
    return names


def _torch_reason(message: str) -> str:
    """The cause in torch's message, without its paragraphs of advice on ``weights_only``."""
    lines = [ln.strip() for ln in message.split("WeightsUnpickler error:")[-1].splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("Weights only load failed",
                                                              "Check the documentation",
                                                              "Please file an issue"))]
    return lines[0].split(". ")[0][:200] if lines else ""
