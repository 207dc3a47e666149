"""Paired latency comparisons for the targets: both models in one process, timed alternately.

On a shared or throttling machine the latency of two separately measured processes can differ
by more than the effect being checked (a few per cent). Here both models see the same input,
run back to back in alternating order, and the statistic is the median of the per-iteration
ratios t_a / t_b with its quartiles.
"""
import statistics
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from nnsam2.benchmark.measure import autocast_context, synchronize
from nnsam2.benchmark.variants import build_sam2_variant

# (candidate, reference): the targets of the issue, plus none_peg (same PEGs as lw) when measured.
PAIRS = (("lw_reparam", "lw"), ("lw_reparam", "none"), ("lw_reparam", "none_peg"),
         ("lora_merged", "lora"))


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


def pair_jobs(variants: List[str], sizes: List[str], patches, **common) -> List[PairJob]:
    return [PairJob(a, b, size, patch, **common) for patch in patches for size in sizes
            for a, b in PAIRS if a in variants and b in variants]


def _time_once(model, x) -> float:
    start = time.perf_counter()
    with torch.inference_mode(), autocast_context(x.device):
        model(x)
    synchronize(x.device)
    return time.perf_counter() - start


def paired_ratio(model_a, model_b, x, *, warmup: int, repeats: int) -> Dict[str, float]:
    """Median and quartiles of t_a / t_b over ``repeats`` alternating iterations."""
    for _ in range(warmup):
        _time_once(model_a, x), _time_once(model_b, x)
    ratios = []
    for i in range(max(2, repeats)):
        if i % 2:
            t_b, t_a = _time_once(model_b, x), _time_once(model_a, x)
        else:
            t_a, t_b = _time_once(model_a, x), _time_once(model_b, x)
        ratios.append(t_a / t_b)
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return dict(median=statistics.median(ratios), q1=q1, q3=q3, n=len(ratios))


def run_pair(job: PairJob) -> dict:
    """Paired latency ratio of ``job.variant`` over ``job.reference`` at batch 1 and batch N."""
    torch.manual_seed(0)
    if job.threads:
        torch.set_num_threads(job.threads)
    device = torch.device(job.device)
    models = [build_sam2_variant(v, job.size, job.channels, job.classes).model.to(device).eval()
              for v in (job.variant, job.reference)]
    out = dict(variant=job.variant, reference=job.reference, size=job.size,
               patch=list(job.patch), batch_size=job.batch_size)
    for batch, key in ((1, "bs1"), (job.batch_size, "bsN")):
        x = torch.randn(batch, job.channels, *job.patch, device=device)
        out[key] = paired_ratio(*models, x, warmup=job.warmup, repeats=job.repeats)
    return out
