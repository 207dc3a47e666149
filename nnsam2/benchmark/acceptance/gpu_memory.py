"""Check 4: the planner's training-memory estimate against the CUDA allocator's peak in real
training steps at the batch it plans."""
import inspect

import torch

from nnsam2.benchmark.acceptance.core import Context, Outcome, TrainStep, gib
from nnsam2.experiment_planning.planner import nnSAM2Planner
from nnsam2.experiment_planning.training_footprint import estimate_training_memory, plan_batch_size
from nnsam2.network import AdapterCfg, build_network

CLASSES = 4
RATIO_RANGE = (0.5, 1.0)  # measured / estimate: the estimate may be generous, never short


def planner_target_gb() -> float:
    """The GPU memory nnsam2's planner plans for unless told otherwise (GB)."""
    parameters = inspect.signature(nnSAM2Planner.__init__).parameters
    return float(parameters["gpu_memory_target_in_gb"].default)


def check_memory_plan(ctx: Context, size: str) -> Outcome:
    patch = ctx.settings.memory_patch
    mem = estimate_training_memory(size, 1, CLASSES, patch, adapter="hp")
    target_gb = planner_target_gb()
    batch, warning = plan_batch_size(mem, target_gb, cap=10**6, what=f"SAM2 {size}",
                                     refuse=False)
    estimate = mem["fixed_bytes"] + batch * mem["per_sample_bytes"]
    torch.cuda.synchronize(ctx.device)
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_allocated(ctx.device)
    torch.cuda.reset_peak_memory_stats(ctx.device)
    net = build_network(1, CLASSES, size=size, adapter=AdapterCfg("hp"))  # random init
    step = TrainStep(net, ctx, (batch, 1, *patch), CLASSES)
    step()
    step()  # AdamW's moments exist from the first step on
    torch.cuda.synchronize(ctx.device)
    measured = torch.cuda.max_memory_allocated(ctx.device) - baseline
    ratio = measured / estimate
    low, high = RATIO_RANGE
    figure = (f"batch {batch} planned for {target_gb:g} GB: estimate {gib(estimate)}, measured "
              f"{gib(measured)} ({ratio:.2f}x)")
    return Outcome(low <= ratio <= high, figure,
                   f"hp, {patch[0]}x{patch[1]}, {ctx.policy.name}, two steps; pass: "
                   f"{low}-{high}x" + (f"; planner warned: {warning}" if warning else ""))
