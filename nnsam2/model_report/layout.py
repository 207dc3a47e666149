"""Where the pieces of a trained model folder are: nnU-Net's layout, nothing assumed beyond it.

A model folder is ``nnUNet_results/DatasetXXX_Name/TRAINER__PLANS__CONFIGURATION`` holding
``plans.json``, ``dataset.json`` and ``fold_X`` folders; the raw dataset (images, references) is
``nnUNet_raw/DatasetXXX_Name``, the split ``nnUNet_preprocessed/DatasetXXX_Name/splits_final.json``.
"""
import json
import os
import re
from dataclasses import dataclass
from typing import List, Optional

from nnsam2.utils.nnunet_env import UsageError

DEFAULT_NUM_FOLDS = 5  # nnU-Net's cross-validation


@dataclass(frozen=True)
class ModelFolder:
    path: str
    dataset: str  # DatasetXXX_Name
    trainer: str
    plans_name: str
    configuration: str

    @property
    def results_dataset(self) -> str:
        """``nnUNet_results/DatasetXXX_Name``: where find_best_configuration writes."""
        return os.path.dirname(self.path)

    def fold_folder(self, fold: str) -> str:
        return os.path.join(self.path, f"fold_{fold}")

    def validation_folder(self, fold: str) -> str:
        return os.path.join(self.fold_folder(fold), "validation")


def open_model_folder(path: str) -> ModelFolder:
    """The model folder at ``path``, or a UsageError saying why it is not one."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise UsageError(f"{path} is not a folder")
    parts = os.path.basename(path).split("__")
    missing = [f for f in ("plans.json", "dataset.json")
               if not os.path.isfile(os.path.join(path, f))]
    if len(parts) != 3 or missing:
        why = (f"it lacks {' and '.join(missing)}" if missing
               else "its name is not TRAINER__PLANS__CONFIG")
        raise UsageError(f"{path} is not an nnU-Net model folder ({why}); pass "
                         f"nnUNet_results/DatasetXXX_Name/TRAINER__PLANS__CONFIG")
    dataset = os.path.basename(os.path.dirname(path))
    return ModelFolder(path, dataset, *parts)


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_model_json(model: ModelFolder, name: str) -> dict:
    """``plans.json`` or ``dataset.json`` of the model folder; without them there is no report."""
    path = os.path.join(model.path, name)
    try:
        return read_json(path)
    except ValueError as e:
        raise UsageError(f"{path} is not valid JSON ({e}): the model folder is damaged") from None


def folds(model: ModelFolder) -> List[str]:
    """Folds to report: those of the split (nnU-Net's 5 without one) and any other trained one."""
    expected = [str(i) for i in range(_num_split_folds(model))]
    present = [m.group(1) for m in map(re.compile(r"fold_(\d+|all)$").match, os.listdir(model.path))
               if m]
    extra = sorted((f for f in present if f not in expected), key=lambda f: (f == "all", f))
    return expected + extra


def _num_split_folds(model: ModelFolder) -> int:
    preprocessed = os.environ.get("nnUNet_preprocessed")
    split = preprocessed and os.path.join(preprocessed, model.dataset, "splits_final.json")
    if split and os.path.isfile(split):
        try:
            return len(read_json(split))
        except (OSError, ValueError):
            pass  # a damaged split is training's problem; the report shows nnU-Net's default
    return DEFAULT_NUM_FOLDS


def raw_dataset_folder(model: ModelFolder) -> Optional[str]:
    """``nnUNet_raw/DatasetXXX_Name`` from the environment, else next to ``nnUNet_results``
    (the demo's layout), or None."""
    results_root = os.path.dirname(model.results_dataset)
    candidates = [os.environ.get("nnUNet_raw"),
                  os.path.join(os.path.dirname(results_root), "nnUNet_raw")]
    for root in filter(None, candidates):
        folder = os.path.join(root, model.dataset)
        if os.path.isdir(folder):
            return folder
    return None
