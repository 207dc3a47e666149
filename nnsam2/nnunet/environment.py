"""nnU-Net paths, dataset lookup and trainer discovery, with errors a user can act on."""
import os
from typing import Union

EXT_TRAINER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext_trainers")
NNUNET_PATH_VARS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


class UsageError(RuntimeError):
    """A problem with the user's input or environment (reported without a traceback)."""


def require_env(*names: str) -> None:
    for name in names:
        value = os.environ.get(name)
        if not value:
            raise UsageError(
                f"environment variable {name} is not set. nnsam2 uses nnU-Net's folders: "
                f"export {name}=/path/to/{name} (see nnU-Net's documentation/setting_up_paths.md)")
        if name == "nnUNet_raw" and not os.path.isdir(value):  # the others may be created
            raise UsageError(f"{name}={value} is not a folder")


def use_nnsam2_trainers() -> None:
    """Let nnU-Net's trainer lookup (training and inference) find nnsam2's trainers."""
    current = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if EXT_TRAINER_DIR not in current:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([EXT_TRAINER_DIR, *current])


def dataset_name(dataset_name_or_id: Union[int, str]) -> str:
    """``DatasetXXX_Name`` for an id or name, or a UsageError listing what exists."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    try:
        return maybe_convert_to_dataset_name(dataset_name_or_id)
    except (RuntimeError, ValueError) as e:
        known = []
        for var in ("nnUNet_raw", "nnUNet_preprocessed"):
            folder = os.environ.get(var)
            if folder and os.path.isdir(folder):
                known += [d for d in os.listdir(folder) if d.startswith("Dataset")]
        raise UsageError(f"unknown dataset {dataset_name_or_id!r}: no DatasetXXX folder with that "
                         f"id in nnUNet_raw / nnUNet_preprocessed / nnUNet_results. Known: "
                         f"{sorted(set(known)) or 'none'}") from e
