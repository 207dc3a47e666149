"""The run's precision in its fold folder (``fold_X/precision.json``): what the device is, which
precision and deformable convolution the policy chose for it, with which torch.

Written at every training start (a run continued on another GPU records that GPU); the training
log has one line per start (:func:`describe`).
"""
import json
import os
from typing import Optional

import torch
import torchvision

from nnsam2.network.precision import Precision, device_facts
from nnsam2.utils.atomic import atomic_path

RECORD_FILE = "precision.json"


def record(device: torch.device, policy: Precision, deform_impl: Optional[str]) -> dict:
    """The record of a run on ``device``; ``deform_impl`` None: the network has no HP adapter."""
    dtype = policy.autocast_dtype
    return dict(device_facts(device), precision=policy.name,
                autocast_dtype=None if dtype is None else str(dtype).removeprefix("torch."),
                grad_scaler=policy.grad_scaler, deform_impl=deform_impl,
                torch=torch.__version__, torchvision=torchvision.__version__)


def describe(rec: dict) -> str:
    """One log line, e.g. ``precision: fp16 autocast with GradScaler on cuda:0 (Tesla T4, compute
    capability 7.5); deformable convolution: torchvision; torch 2.5.1``."""
    mode = ("fp32, no autocast" if rec["autocast_dtype"] is None else
            f"{rec['precision']} autocast {'with' if rec['grad_scaler'] else 'without'} GradScaler")
    gpu = ("" if rec["compute_capability"] is None else
           f" ({rec['device_name']}, compute capability {rec['compute_capability']})")
    deform = "" if rec["deform_impl"] is None else f"; deformable convolution: {rec['deform_impl']}"
    return f"precision: {mode} on {rec['device']}{gpu}{deform}; torch {rec['torch']}"


def save(folder: str, rec: dict) -> None:
    with atomic_path(os.path.join(folder, RECORD_FILE)) as tmp:
        with open(tmp, "w") as f:
            json.dump(rec, f, indent=2)
