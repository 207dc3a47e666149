"""What every acceptance check shares: its result, the run's settings and one training step under
the device's precision policy, as nnU-Net's ``train_step`` runs it."""
import contextlib
import math
import statistics
import time
from dataclasses import dataclass
from typing import List, NamedTuple, Tuple

import torch
from torch import nn

from nnsam2.benchmark.measure import segmentation_loss, synchronize
from nnsam2.network.precision import Precision, make_grad_scaler


class Outcome(NamedTuple):
    """What one check found: ``passed``, the measured ``figure`` and a ``note`` (what the
    threshold is, what went wrong)."""

    passed: bool
    figure: str
    note: str = ""


@dataclass(frozen=True)
class Settings:
    """Sizes of one acceptance run.

    Args:
        size: SAM2 size of the training-step, prediction and 2d_mem checks.
        patch: (H, W) training patch of those checks (and of the DCN speed check).
        batch: training batch of those checks.
        repeats: timed training steps (after one untimed).
        memory_sizes: SAM2 sizes whose planned batch is checked against the CUDA allocator.
        memory_patch: the patch planned for them.
        prediction_patch: the sliding-window patch of the prediction check.
        prediction_image: (C, D, H, W) of the image it predicts (2D patches over D slices).
        mem_slices: slices of the 2d_mem check's (1, C, D, H, W) patch.
        mem_patch: its (H, W).
        end_to_end: ``demo`` (``nnsam2_demo``) or ``short`` (the demo's steps, two iterations).
    """

    size: str
    patch: Tuple[int, int]
    batch: int
    repeats: int
    memory_sizes: Tuple[str, ...]
    memory_patch: Tuple[int, int]
    prediction_patch: Tuple[int, int]
    prediction_image: Tuple[int, int, int, int]
    mem_slices: int
    mem_patch: Tuple[int, int]
    end_to_end: str


FULL = Settings(size="tiny", patch=(512, 512), batch=2, repeats=5, memory_sizes=("tiny", "large"),
                memory_patch=(512, 512), prediction_patch=(256, 256),
                prediction_image=(1, 6, 512, 512), mem_slices=7, mem_patch=(256, 256),
                end_to_end="demo")
QUICK = Settings(size="toy", patch=(64, 64), batch=2, repeats=2, memory_sizes=("toy",),
                 memory_patch=(64, 64), prediction_patch=(32, 32), prediction_image=(1, 2, 64, 64),
                 mem_slices=7, mem_patch=(64, 64), end_to_end="short")


@dataclass(frozen=True)
class Context:
    """The device, its precision policy and the settings every check reads."""

    device: torch.device
    policy: Precision
    settings: Settings
    quick: bool


def nnunet_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast nnU-Net's trainer and predictor open: the device default (fp16) on CUDA,
    none elsewhere; the network switches it to the policy's dtype itself."""
    return torch.autocast(device.type) if device.type == "cuda" else contextlib.nullcontext()


def policy_autocast(ctx: Context) -> contextlib.AbstractContextManager:
    """Autocast in the policy's dtype (none for fp32)."""
    dtype = ctx.policy.autocast_dtype
    return (torch.autocast(ctx.device.type, dtype=dtype) if dtype is not None
            else contextlib.nullcontext())


class TrainStep:
    """AdamW steps of ``net`` on one random batch, as nnsam2's trainer runs them: the network in
    the policy's dtype under nnU-Net's autocast, the loss scaled where the policy says so.

    Args:
        net: the network (moved to ``ctx.device``).
        ctx: the run.
        shape: (B, C, *spatial) of the input.
        classes: output classes (the target is random labels below that).
    """

    def __init__(self, net: nn.Module, ctx: Context, shape: Tuple[int, ...], classes: int):
        self.net, self.device = net.to(ctx.device).train(), ctx.device
        net.autocast_dtype = ctx.policy.autocast_dtype
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=1e-3, weight_decay=1e-2)
        self.scaler = make_grad_scaler(ctx.policy, ctx.device)
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(shape, generator=generator).to(ctx.device)
        target_shape = (shape[0], *shape[2:])
        self.target = torch.randint(0, classes, target_shape, generator=generator).to(ctx.device)
        self.model = net  # what the step calls: replaced by a compiled module in the compile check

    def __call__(self) -> float:
        """One step; its loss."""
        self.optimizer.zero_grad(set_to_none=True)
        with nnunet_autocast(self.device):
            loss = segmentation_loss(self.model(self.x), self.target)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())

    def timed(self, steps: int) -> Tuple[List[float], List[float]]:
        """(losses, seconds) of ``steps`` steps, each synchronised."""
        losses, seconds = [], []
        for _ in range(steps):
            start = time.perf_counter()
            losses.append(self())
            synchronize(self.device)
            seconds.append(time.perf_counter() - start)
        return losses, seconds


def all_finite(values) -> bool:
    return all(math.isfinite(v) for v in values)


def median_ms(seconds: List[float]) -> float:
    return 1e3 * statistics.median(seconds)


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"

