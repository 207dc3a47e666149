"""Checks 3, 6 and 10: training steps under the device's precision policy (the dtype of every
linear and convolution output, the loss scaler), for the adapter variants, and compiled."""
from collections import Counter
from typing import Tuple

import torch
from torch import nn

from nnsam2.benchmark.acceptance.core import Context, Outcome, TrainStep, all_finite, median_ms
from nnsam2.benchmark.variants import build_sam2_variant
from nnsam2.network import AdapterCfg, build_network

CLASSES = 3
# Parameters that must change in a step of each variant: what the variant trains beyond the rest.
OWN_PARAMETERS = {"none": "sam_mask_decoder.", "none_peg": ".peg.", "hp": ".adapter.",
                  "lw": ".adapter."}


def input_shape(ctx: Context) -> tuple:
    return (ctx.settings.batch, 1, *ctx.settings.patch)


def output_dtypes(net: nn.Module, step: TrainStep) -> Tuple[Counter, float]:
    """Run ``step`` once: (dtypes of every Linear and convolution output, counted; the loss)."""
    counts: Counter = Counter()

    def record(module, inputs, output):
        if isinstance(output, torch.Tensor):
            counts[str(output.dtype).replace("torch.", "")] += 1

    hooks = [m.register_forward_hook(record) for m in net.modules()
             if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    try:
        loss = step()
    finally:
        for hook in hooks:
            hook.remove()
    return counts, loss


def policy_problems(ctx: Context, counts: Counter, scaler) -> list:
    """What contradicts the policy: a reduced dtype other than the policy's, or a missing (or
    superfluous) loss scaler."""
    name, problems = ctx.policy.name, []
    wrong = {"bf16": ("float16",), "fp16": ("bfloat16",),
             "fp32": ("float16", "bfloat16")}[name]
    problems += [f"{counts[d]} {d} outputs" for d in wrong if counts[d]]
    if ctx.policy.autocast_dtype is not None:
        wanted = str(ctx.policy.autocast_dtype).replace("torch.", "")
        if not counts[wanted]:
            problems.append(f"no {wanted} output at all")
    if ctx.policy.grad_scaler and (scaler is None or not scaler.is_enabled()
                                   or scaler.get_scale() <= 1.0):
        problems.append("fp16 run without an active GradScaler")
    if not ctx.policy.grad_scaler and scaler is not None:
        problems.append(f"GradScaler on a {name} run")
    return problems


def check_precision_audit(ctx: Context) -> Outcome:
    torch.manual_seed(0)
    net = build_network(1, CLASSES, size=ctx.settings.size, adapter=AdapterCfg("hp"))
    step = TrainStep(net, ctx, input_shape(ctx), CLASSES)
    counts, loss = output_dtypes(net, step)
    problems = policy_problems(ctx, counts, step.scaler) + (
        [] if all_finite([loss]) else ["loss not finite"])
    scale = "" if step.scaler is None else f"; GradScaler scale {step.scaler.get_scale():g}"
    figure = ", ".join(f"{d} {n}" for d, n in sorted(counts.items())) + " outputs" + scale
    return Outcome(not problems, figure, "; ".join(problems) or
                   f"{ctx.policy.name}: one hp training step under nnU-Net's autocast; "
                   "Linear/Conv output dtypes")


def changed_parameters(net: nn.Module, before: dict) -> dict:
    """{"trainable": [names changed], "frozen": [names changed], "n_trainable": count}."""
    out = dict(trainable=[], frozen=[], n_trainable=0)
    for name, p in net.named_parameters():
        out["n_trainable"] += p.requires_grad
        if not torch.equal(p.detach(), before[name]):
            out["trainable" if p.requires_grad else "frozen"].append(name)
    return out


def check_train_step(ctx: Context, variant: str) -> Outcome:
    torch.manual_seed(0)
    net = build_sam2_variant(variant, ctx.settings.size, 1, CLASSES).model
    step = TrainStep(net, ctx, input_shape(ctx), CLASSES)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    losses = [step()]
    more, seconds = step.timed(ctx.settings.repeats)
    losses += more
    changed = changed_parameters(net, before)
    own = [n for n in changed["trainable"] if OWN_PARAMETERS[variant] in n]
    problems = ([] if all_finite(losses) else ["loss not finite"]) + (
        [] if own else [f"no {OWN_PARAMETERS[variant]!r} parameter changed"]) + (
        [f"{len(changed['frozen'])} frozen tensors changed"] if changed["frozen"] else [])
    figure = (f"{median_ms(seconds):.1f} ms per step; loss {losses[0]:.3f} -> {losses[-1]:.3f}; "
              f"{len(changed['trainable'])}/{changed['n_trainable']} trainable tensors changed")
    return Outcome(not problems, figure, "; ".join(problems) or
                   f"{ctx.settings.size}, batch {ctx.settings.batch}, "
                   f"{ctx.settings.patch[0]}x{ctx.settings.patch[1]}, {ctx.policy.name}")


def check_compile(ctx: Context) -> Outcome:
    torch.manual_seed(0)
    net = build_network(1, CLASSES, size=ctx.settings.size, adapter=AdapterCfg("hp"))
    step = TrainStep(net, ctx, input_shape(ctx), CLASSES)
    step()
    _, eager = step.timed(ctx.settings.repeats)
    step.model = torch.compile(net)
    losses, first = step.timed(1)  # compiles
    more, compiled = step.timed(ctx.settings.repeats)
    finite = all_finite(losses + more)
    figure = (f"first step {first[0]:.0f} s (compiling), then {median_ms(compiled):.1f} ms per "
              f"step compiled vs {median_ms(eager):.1f} ms eager")
    return Outcome(finite, figure, ("" if finite else "loss not finite; ") +
                   f"hp {ctx.settings.size}, {1 + ctx.settings.repeats} compiled steps; the "
                   "speed is informational")
