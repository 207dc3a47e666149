"""Training curves of a fold from nnU-Net's own log: the ``logging`` dict of its checkpoint.

nnU-Net's LocalLogger keeps one value per epoch for ``train_losses``, ``val_losses``,
``mean_fg_dice`` (pseudo Dice), ``ema_fg_dice``, ``lrs`` and the epoch start/end timestamps, and
stores that dict in every checkpoint. Checkpoints are read safely (no code is unpickled).
"""
import os
from typing import Dict, List, Optional

from nnsam2.utils.safe_torch_load import load_nnunet_checkpoint
from nnsam2.model_report.layout import ModelFolder
from nnsam2.model_report.missing import Missing, collect

CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_latest.pth")  # final first: the whole run
SERIES = ("train_losses", "val_losses", "mean_fg_dice", "ema_fg_dice", "lrs")


def fold_curves(model: ModelFolder, fold: str, allow_pickle: Optional[bool] = None):
    """{checkpoint, epochs, <series>: [...], epoch_time: [...]} of one fold, or Missing."""
    folder = model.fold_folder(fold)
    if not os.path.isdir(folder):
        return Missing(f"fold {fold} has not been trained")
    for name in CHECKPOINTS:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return curves_from_log(load_nnunet_checkpoint(path, allow_pickle)["logging"], name)
    return Missing(f"fold {fold} has neither {' nor '.join(CHECKPOINTS)}")


def curves_from_log(log: Dict[str, list], source: str) -> dict:
    """Plain float lists, cut to the epochs every series has (a run killed mid-epoch logged some
    of the current epoch's values but not all)."""
    series = {k: [float(v) for v in log.get(k, [])] for k in SERIES}
    starts, ends = log.get("epoch_start_timestamps", []), log.get("epoch_end_timestamps", [])
    series["epoch_time"] = [float(e - s) for s, e in zip(starts, ends)]
    epochs = min(len(v) for v in series.values())
    return {"checkpoint": source, "epochs": epochs, **{k: v[:epochs] for k, v in series.items()}}


def all_curves(model: ModelFolder, folds: List[str],
               allow_pickle: Optional[bool] = None) -> Dict[str, object]:
    return {f: collect(f"fold {f} training log", lambda f=f: fold_curves(model, f, allow_pickle))
            for f in folds}
