"""Paired comparisons for the targets: both models in one process, timed alternately.

On a shared or throttling machine the latency of two separately measured processes can differ
by more than the effect being checked (a few per cent). Here both models see the same input,
run back to back in alternating order, and the statistic is the median of the per-iteration
ratios t_a / t_b with its quartiles. Latency pairs time inference at batch 1 and N; training
pairs time one training step (forward + backward + AdamW) at batch N.
"""
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch

from nnsam2.benchmark.measure import autocast_context, make_train_step, synchronize
from nnsam2.benchmark.variants import build_sam2_variant

# (candidate, reference): the targets of the issue, plus none_peg (same PEGs as lw) when measured.
PAIRS = (("lw_reparam", "lw"), ("lw_reparam", "none"), ("lw_reparam", "none_peg"),
         ("lora_merged", "lora"))
# (candidate, reference) of the training-step target: HP with a fast deformable convolution.
TRAIN_PAIRS = (("hp", "none"),)


@dataclass(frozen=True)
class PairJob:
    """Two SAM2 variants at one size and patch, timed alternately in one process."""

    variant: str
    reference: str
    size: str
    patch: Tuple[int, int]
    channels: int
    classes: int
    batch_size: int
    device: str
    warmup: int
    repeats: int
    threads: Optional[int] = None
    train: bool = False  # time a training step at batch N instead of inference


def pair_jobs(variants: List[str], sizes: List[str], patches, *, train: bool = False,
              **common) -> List[PairJob]:
    jobs = [PairJob(a, b, size, patch, **common) for patch in patches for size in sizes
            for a, b in PAIRS if a in variants and b in variants]
    return jobs + [PairJob(a, b, size, patch, **common, train=True) for patch in patches
                   for size in sizes for a, b in TRAIN_PAIRS
                   if train and a in variants and b in variants]


def _time_once(fn: Callable[[], None], device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def _inference(model, x) -> Callable[[], None]:
    def forward() -> None:
        with torch.inference_mode(), autocast_context(x.device):
            model(x)
    return forward


def paired_ratio(fn_a: Callable[[], None], fn_b: Callable[[], None], device: torch.device, *,
                 warmup: int, repeats: int) -> Dict[str, float]:
    """Median and quartiles of t_a / t_b over ``repeats`` alternating iterations."""
    for _ in range(warmup):
        _time_once(fn_a, device), _time_once(fn_b, device)
    ratios = []
    for i in range(max(2, repeats)):
        if i % 2:
            t_b, t_a = _time_once(fn_b, device), _time_once(fn_a, device)
        else:
            t_a, t_b = _time_once(fn_a, device), _time_once(fn_b, device)
        ratios.append(t_a / t_b)
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return dict(median=statistics.median(ratios), q1=q1, q3=q3, n=len(ratios))


def run_pair(job: PairJob) -> dict:
    """Paired ratio of ``job.variant`` over ``job.reference``: inference latency at batch 1 and
    N (``bs1``, ``bsN``), or with ``job.train`` one training step at batch N (``train_bsN``)."""
    torch.manual_seed(0)
    if job.threads:
        torch.set_num_threads(job.threads)
    device = torch.device(job.device)
    models = [build_sam2_variant(v, job.size, job.channels, job.classes).model.to(device).eval()
              for v in (job.variant, job.reference)]
    out = dict(variant=job.variant, reference=job.reference, size=job.size,
               patch=list(job.patch), batch_size=job.batch_size)
    timing = dict(warmup=job.warmup, repeats=job.repeats)
    if job.train:
        x = torch.randn(job.batch_size, job.channels, *job.patch, device=device)
        target = torch.randint(0, job.classes, (job.batch_size, *job.patch), device=device)
        steps = [make_train_step(m, x, target) for m in models]
        out["train_bsN"] = paired_ratio(*steps, device, **timing)
        return out
    for batch, key in ((1, "bs1"), (job.batch_size, "bsN")):
        x = torch.randn(batch, job.channels, *job.patch, device=device)
        out[key] = paired_ratio(*(_inference(m, x) for m in models), device, **timing)
    return out
