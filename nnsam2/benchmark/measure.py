"""Timing, memory, FLOP and autocast-dtype primitives for one model on one device."""
import contextlib
import logging
import resource
import statistics
import time
from collections import Counter
from typing import Callable, Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from nnsam2.network.summary import flops_by_component

logger = logging.getLogger(__name__)

# Ops whose dtype under autocast decides whether the tensor cores / bf16 kernels are used.
HEAVY_OPS = ("convolution", "mm", "addmm", "bmm", "baddbmm", "linear", "scaled_dot_product",
             "deform_conv2d", "conv2d", "embedding_bag")  # the last: HP's deformable sampling


def autocast_context(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, plain fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timing_stats(seconds: Sequence[float]) -> Dict[str, float]:
    """Median, quartiles (IQR) and min/max in milliseconds."""
    ms = sorted(s * 1e3 for s in seconds)
    if len(ms) >= 2:
        q1, _, q3 = statistics.quantiles(ms, n=4, method="inclusive")
    else:
        q1 = q3 = ms[0]
    return dict(median_ms=statistics.median(ms), q1_ms=q1, q3_ms=q3, min_ms=ms[0],
                max_ms=ms[-1], n=len(ms))


def time_repeated(fn: Callable[[], None], device: torch.device, *, warmup: int,
                  repeats: int) -> Dict[str, float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times, each timed on its own."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return timing_stats(seconds)


def inference_latency(model: nn.Module, x: torch.Tensor, *, warmup: int,
                      repeats: int) -> Dict[str, float]:
    """Forward latency in eval mode under ``torch.inference_mode`` (and bf16 autocast on CUDA)."""
    model.eval()

    def forward() -> None:
        with torch.inference_mode(), autocast_context(x.device):
            model(x)

    return time_repeated(forward, x.device, warmup=warmup, repeats=repeats)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on (B, K, H, W) logits; BCE when the model has a single output map."""
    logits = logits.float()
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], (target > 0).float())
    return F.cross_entropy(logits, target.clamp(max=logits.shape[1] - 1))


def make_train_step(model: nn.Module, x: torch.Tensor,
                    target: torch.Tensor) -> Callable[[], None]:
    """One forward + backward + AdamW step on the trainable parameters (bf16 autocast on CUDA)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast_context(x.device):
            loss = segmentation_loss(model(x), target)
        loss.backward()
        optimizer.step()

    return step


def train_step_time(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, warmup: int,
                    repeats: int) -> Dict[str, float]:
    """Time of :func:`make_train_step`'s step: ``warmup`` untimed, then ``repeats`` timed."""
    return time_repeated(make_train_step(model, x, target), x.device, warmup=warmup,
                         repeats=repeats)


def current_rss_mib() -> float:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return 0.0
    return pages * resource.getpagesize() / 2**20


def reset_peak_memory(device: torch.device) -> None:
    """CUDA: restart the allocator's high-water mark. CPU: ru_maxrss cannot be reset."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float:
    """CUDA: max allocated since the last reset. CPU: this process's peak RSS (ru_maxrss)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def count_parameters(model: nn.Module) -> Dict[str, float]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return dict(params=total, trainable=trainable, trainable_pct=100.0 * trainable / max(total, 1))


def forward_gflops(model: nn.Module, input_shape: Sequence[int]) -> Dict[str, float]:
    """Forward GFLOPs (GFLOPs = 2 x GMACs) per component and in total (``all``)."""
    return flops_by_component(model, input_shape)


class _HeavyOpDtypes(TorchDispatchMode):
    """Counts the heavy ops that run, keyed by ``op name@dtype of the first float input``."""

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if any(name == op or name.startswith(f"_{op}") or name.startswith(f"{op}_")
               for op in HEAVY_OPS):
            dtype = next((a.dtype for a in args if isinstance(a, torch.Tensor)
                          and a.is_floating_point()), None)
            self.counts[f"{name}@{str(dtype).replace('torch.', '')}"] += 1
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def autocast_heavy_op_dtypes(model: nn.Module, x: torch.Tensor) -> Dict[str, object]:
    """Heavy ops and the dtype they ran in for one forward under bf16 autocast on ``x``'s device.

    Returns ``{"ops": {"name@dtype": count}, "error": None}``. An ``@float32`` entry is an op that
    autocast left in (or cast back to) fp32: a slow path on GPUs with bf16 tensor cores. If the
    forward fails under autocast (e.g. a CPU kernel without bf16), ``error`` says why.
    """
    model.eval()
    try:
        with torch.autocast(x.device.type, dtype=torch.bfloat16), _HeavyOpDtypes() as mode:
            model(x)
    except RuntimeError as err:
        message = str(err).strip().splitlines()[-1]
        logger.warning("forward under bf16 autocast failed: %s", message)
        return dict(ops={}, error=message)
    return dict(ops=dict(sorted(mode.counts.items())), error=None)
