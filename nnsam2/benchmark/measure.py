"""Timing, memory, parameter and autocast-dtype primitives for one model on one device."""
import contextlib
import logging
import resource
import statistics
import time
from collections import Counter
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

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


def quartiles(values: Sequence[float]) -> Dict[str, float]:
    """Median, quartiles (inclusive method), min, max and count of ``values``."""
    values = sorted(values)
    q1, q3 = (statistics.quantiles(values, n=4, method="inclusive")[::2] if len(values) > 1
              else (values[0], values[0]))
    return dict(median=statistics.median(values), q1=q1, q3=q3, min=values[0], max=values[-1],
                n=len(values))


def timing_stats(seconds: Sequence[float]) -> Dict[str, float]:
    """:func:`quartiles` in milliseconds (``median_ms``, ``q1_ms``, ..., ``n``)."""
    ms = quartiles([s * 1e3 for s in seconds])
    return {k if k == "n" else f"{k}_ms": v for k, v in ms.items()}


def time_once(fn: Callable[[], None], device: torch.device) -> float:
    """Seconds of one call of ``fn`` (CUDA synchronised)."""
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def time_repeated(fn: Callable[[], None], device: torch.device, *, warmup: int,
                  repeats: int) -> Dict[str, float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times, each timed on its own."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    return timing_stats([time_once(fn, device) for _ in range(max(1, repeats))])


def inference(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One forward on ``x`` in eval mode under ``torch.inference_mode`` (bf16 autocast on CUDA)."""
    model.eval()

    def forward() -> None:
        with torch.inference_mode(), autocast_context(x.device):
            model(x)

    return forward


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


def peak_memory_mib(device: torch.device, isolated: bool = True) -> Optional[float]:
    """CUDA: max allocated since the last reset. CPU: this process's peak RSS (ru_maxrss); None
    when the process is not ``isolated`` (its RSS says nothing about one model)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if isolated else None  # KiB


def count_parameters(model: nn.Module) -> Dict[str, float]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return dict(params=total, trainable=trainable, trainable_pct=100.0 * trainable / max(total, 1))


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
