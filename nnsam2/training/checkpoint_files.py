"""nnU-Net checkpoints for nnsam2 trainers: lean, written atomically, read safely, with fallback.

The checkpoint dict has nnU-Net's fields (``network_weights``, ``optimizer_state``, ``logging``,
``current_epoch``, ...), so nnU-Net's predictor and ``--c`` logic read it as usual; its
``network_weights`` is lean (see :mod:`nnsam2.network.frozen_store`). A write goes to a temporary
file and is renamed into place: a run killed mid-write keeps its previous checkpoint.
"""
import logging
import os
from typing import List, Optional, Tuple

import torch

from nnsam2.network import frozen_store
from nnsam2.network.sam2_weights import CheckpointError
from nnsam2.utils.safe_torch_load import UnsafeCheckpointError, load_nnunet_checkpoint
from nnsam2.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")


def model_folder_of(fold_folder: str) -> str:
    """The model folder (``Trainer__Plans__configuration``) holding a ``fold_X`` folder."""
    return os.path.dirname(os.path.abspath(fold_folder))


def payload(trainer, network: torch.nn.Module) -> dict:
    """What nnU-Net's checkpoint holds, with the frozen SAM2 weights referenced, not copied."""
    return {
        "network_weights": frozen_store.split_state_dict(
            network, model_folder_of(trainer.output_folder)),
        "optimizer_state": trainer.optimizer.state_dict(),
        "grad_scaler_state": None if trainer.grad_scaler is None else trainer.grad_scaler.state_dict(),
        "logging": trainer.logger.get_checkpoint(),
        "_best_ema": trainer._best_ema,
        "current_epoch": trainer.current_epoch + 1,
        "init_args": trainer.my_init_kwargs,
        "trainer_name": trainer.__class__.__name__,
        "inference_allowed_mirroring_axes": trainer.inference_allowed_mirroring_axes,
    }


def restore(trainer, network: torch.nn.Module, checkpoint: dict) -> None:
    """Put a checkpoint's state back into ``trainer`` (the inverse of :func:`payload`)."""
    weights = {k[len("module."):] if k.startswith("module.") else k: v
               for k, v in checkpoint["network_weights"].items()}  # DDP-saved keys
    network.load_state_dict(weights)
    trainer.optimizer.load_state_dict(checkpoint["optimizer_state"])
    if trainer.grad_scaler is not None and checkpoint.get("grad_scaler_state") is not None:
        trainer.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])
    trainer.my_init_kwargs = checkpoint["init_args"]
    trainer.current_epoch = checkpoint["current_epoch"]
    trainer.logger.load_checkpoint(checkpoint["logging"])
    trainer._best_ema = checkpoint["_best_ema"]
    trainer.inference_allowed_mirroring_axes = checkpoint.get(
        "inference_allowed_mirroring_axes", trainer.inference_allowed_mirroring_axes)


def write(checkpoint: dict, filename: str, save=torch.save) -> None:
    """Atomically: the old ``filename`` stays intact until the new one is complete on disk."""
    with atomic_path(filename) as tmp:
        save(checkpoint, tmp)


def _fallbacks(filename: str) -> List[str]:
    """The other checkpoints of the same fold folder, newest first."""
    folder = os.path.dirname(os.path.abspath(filename))
    others = [os.path.join(folder, n) for n in CHECKPOINT_NAMES
              if os.path.join(folder, n) != os.path.abspath(filename)]
    return sorted((p for p in others if os.path.isfile(p)), key=os.path.getmtime, reverse=True)


def read(filename: str, fallback: bool = False,
         allow_pickle: Optional[bool] = None) -> Tuple[dict, str]:
    """(checkpoint with full network weights, path actually read).

    With ``fallback`` an unreadable checkpoint is replaced by the newest readable one of the same
    fold (``--c`` after a crash), and the switch is logged. A file refused as unsafe never falls
    back: that is not damage, and the user must decide.
    """
    candidates = [os.fspath(filename)] + (_fallbacks(filename) if fallback else [])
    problems = []
    for path in candidates:
        try:
            checkpoint = load_nnunet_checkpoint(path, allow_pickle)
        except UnsafeCheckpointError:
            raise
        except CheckpointError as e:
            problems.append(str(e))
            continue
        if problems:
            logger.warning("nnsam2: %s\nnnsam2: continuing from %s (epoch %s) instead", problems[0],
                           path, checkpoint.get("current_epoch"))
        checkpoint["network_weights"] = frozen_store.expand(
            checkpoint["network_weights"], [model_folder_of(os.path.dirname(path))])
        return checkpoint, path
    suffix = "; no other readable checkpoint in this fold folder" if fallback else ""
    raise CheckpointError("; ".join(problems) + suffix)
