"""nnU-Net paths, dataset lookup and trainer discovery, with errors a user can act on.

Process-wide state that nnsam2 sets (everything else travels as arguments and files):

* ``nnUNet_extTrainer`` gets nnsam2's trainer folder prepended, and that folder's modules are
  registered under the bare names nnU-Net's lookup imports them by
  (:func:`nnsam2.training.trainer_lookup.use_nnsam2_trainers`);
* nnU-Net's folder variables, for the demo's own workspace and inside
  :func:`temporary_nnunet_folders` (benchmarks), restored afterwards;
* signal handlers, at-fork hooks and ``nnSAM2_guard_parent`` of the worker guard
  (:mod:`nnsam2.utils.process_guard`);
* torch thread counts in the training and benchmark entry points (as nnU-Net's own commands);
* nnU-Net's predictor class swapped for the batched one during the final validation
  (:func:`nnsam2.inference.batched_prediction.predictor_class_injected`).
"""
import contextlib
import os
from pathlib import Path
from typing import Dict, Iterator, Union

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
NNUNET_PATH_VARS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


class UsageError(RuntimeError):
    """A problem with the user's input or environment (reported without a traceback)."""


def compile_requested() -> bool:
    """Whether ``nnUNet_compile`` asks for torch.compile (nnU-Net's spelling of yes)."""
    return os.environ.get("nnUNet_compile", "f").lower() in ("true", "1", "t")


def require_env(*names: str) -> None:
    for name in names:
        value = os.environ.get(name)
        if not value:
            raise UsageError(
                f"environment variable {name} is not set. nnsam2 uses nnU-Net's folders: "
                f"export {name}=/path/to/{name} (see nnU-Net's documentation/setting_up_paths.md)")
        if name == "nnUNet_raw" and not os.path.isdir(value):  # the others may be created
            raise UsageError(f"{name}={value} is not a folder")


@contextlib.contextmanager
def temporary_environ(**values: str) -> Iterator[None]:
    """The variables ``values`` for the duration; the caller's values (or their absence) are
    restored afterwards."""
    saved = {var: os.environ.get(var) for var in values}
    try:
        os.environ.update(values)
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


@contextlib.contextmanager
def temporary_nnunet_folders(root: Union[str, Path]) -> Iterator[Dict[str, Path]]:
    """nnU-Net's three folders under ``root`` for the duration (nnunetv2 reads the variables
    when it uses them); the caller's values are restored afterwards."""
    paths = {var: Path(root) / var for var in NNUNET_FOLDERS}
    for path in paths.values():
        path.mkdir(parents=True, exist_ok=True)
    with temporary_environ(**{var: str(path) for var, path in paths.items()}):
        yield paths


def dataset_name(dataset_name_or_id: Union[int, str]) -> str:
    """``DatasetXXX_Name`` for an id or name, or a UsageError listing what exists."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    try:
        return maybe_convert_to_dataset_name(dataset_name_or_id)
    except (RuntimeError, ValueError) as e:
        known = []
        for var in NNUNET_FOLDERS[:2]:
            folder = os.environ.get(var)
            if folder and os.path.isdir(folder):
                known += [d for d in os.listdir(folder) if d.startswith("Dataset")]
        raise UsageError(f"unknown dataset {dataset_name_or_id!r}: no DatasetXXX folder with that "
                         f"id in nnUNet_raw / nnUNet_preprocessed / nnUNet_results. Known: "
                         f"{sorted(set(known)) or 'none'}") from e
