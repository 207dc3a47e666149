"""One precision policy per run, decided from the device (plain PyTorch, no nnU-Net).

* CPU (and other non-CUDA devices): fp32, no autocast (nnU-Net opens autocast on CUDA only).
* CUDA with native bf16 (compute capability 8.0+: A100, H100, RTX 30xx/40xx, L4): bf16
  autocast, no GradScaler (bf16 has fp32's exponent range, so gradients do not underflow).
* Other CUDA (T4, V100, RTX 20xx): fp16 autocast with a GradScaler. Their bf16 is emulated: it
  runs, but far slower than fp16, and some kernels have no emulated path at all.

The network applies its autocast dtype itself (:func:`autocast_switch`), because nnU-Net's
validation and its predictor open ``torch.autocast(device_type)`` with the device default, fp16
on CUDA, whatever the run decided.
"""
import contextlib
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class Precision:
    """A precision policy.

    Args:
        name: ``fp32``, ``bf16`` or ``fp16``.
        autocast_dtype: the dtype autocast regions run in; None: no autocast.
        grad_scaler: whether training scales the loss (fp16 gradients underflow without it).
    """

    name: str
    autocast_dtype: Optional[torch.dtype]
    grad_scaler: bool


FP32 = Precision("fp32", None, False)
BF16 = Precision("bf16", torch.bfloat16, False)
FP16 = Precision("fp16", torch.float16, True)


def native_bf16(device: torch.device) -> bool:
    """Whether the CUDA ``device`` has bf16 tensor cores (emulated bf16 does not count)."""
    with torch.cuda.device(device):  # is_bf16_supported asks about the current device
        return torch.cuda.is_bf16_supported(including_emulation=False)


def policy_for(device: torch.device) -> Precision:
    """The precision a run on ``device`` uses (see the module docstring)."""
    device = torch.device(device)
    if device.type != "cuda":
        return FP32
    return BF16 if native_bf16(device) else FP16


def network_autocast_dtype(device: torch.device) -> torch.dtype:
    """The dtype the network runs in under an autocast nobody configured for it: the policy's,
    and bf16 (SAM2's training precision) where the policy has no autocast but a caller opened
    one."""
    return policy_for(device).autocast_dtype or torch.bfloat16


def autocast_switch(device: torch.device, dtype: Optional[torch.dtype] = None):
    """Under any autocast on ``device``, switch it to ``dtype`` (None: the device's policy);
    without autocast the computation runs in the caller's precision.

    Decided per call because ``torch.set_autocast_dtype`` is thread-local and every entry point
    (trainer, nnU-Net's validation, both predictors) would have to remember it.
    """
    if not torch.is_autocast_enabled(device.type):
        return contextlib.nullcontext()
    dtype = dtype or network_autocast_dtype(device)
    if torch.get_autocast_dtype(device.type) == dtype:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def make_grad_scaler(policy: Precision, device: torch.device) -> Optional[torch.amp.GradScaler]:
    """The loss scaler the policy needs on ``device``, or None."""
    return torch.amp.GradScaler(torch.device(device).type) if policy.grad_scaler else None


def device_facts(device: torch.device) -> dict:
    """What decides the policy: the device, its name and CUDA compute capability."""
    device = torch.device(device)
    if device.type != "cuda":
        return dict(device=str(device), device_name=device.type, compute_capability=None)
    major, minor = torch.cuda.get_device_capability(device)
    return dict(device=str(device), device_name=torch.cuda.get_device_name(device),
                compute_capability=f"{major}.{minor}")
