"""Paired comparisons: both models in one process, same input, timed alternately; the statistic
is the median (and quartiles) of the per-iteration ratios t_a / t_b. Latency pairs time inference
at batch 1 and N, training pairs one training step (forward + backward + AdamW) at batch N.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch

from nnsam2.benchmark.measure import inference, make_train_step, quartiles, time_once
from nnsam2.benchmark.variants import build_sam2_variant

# (candidate, reference) latency pairs: each inference-only form against its training form and
# lw_reparam against frozen SAM2 (and none_peg, the same PEGs as lw, when measured).
PAIRS = (("lw_reparam", "lw"), ("lw_reparam", "none"), ("lw_reparam", "none_peg"),
         ("lora_merged", "lora"))
# (candidate, reference) training-step pairs: HP against frozen SAM2.
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


def paired_ratio(fn_a: Callable[[], None], fn_b: Callable[[], None], device: torch.device, *,
                 warmup: int, repeats: int) -> Dict[str, float]:
    """:func:`quartiles` of t_a / t_b over ``repeats`` (at least 2) alternating iterations."""
    for _ in range(warmup):
        time_once(fn_a, device), time_once(fn_b, device)
    ratios = []
    for i in range(max(2, repeats)):
        if i % 2:
            t_b, t_a = time_once(fn_b, device), time_once(fn_a, device)
        else:
            t_a, t_b = time_once(fn_a, device), time_once(fn_b, device)
        ratios.append(t_a / t_b)
    return quartiles(ratios)


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
        out[key] = paired_ratio(*(inference(m, x) for m in models), device, **timing)
    return out
