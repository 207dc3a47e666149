"""Check 9: the ``2d_mem`` network (SAM2's memory over the slices of a patch) trains: finite
loss and gradients, and a gradient on the memory gate, which starts closed."""
import torch

from nnsam2.benchmark.acceptance.core import Context, Outcome, TrainStep, all_finite
from nnsam2.network import AdapterCfg, build_memory_network

CLASSES = 3


def check_2d_mem(ctx: Context) -> Outcome:
    torch.manual_seed(0)
    net = build_memory_network(1, CLASSES, size=ctx.settings.size, adapter=AdapterCfg("hp"))
    shape = (1, 1, ctx.settings.mem_slices, *ctx.settings.mem_patch)  # (B, C, D, H, W)
    step = TrainStep(net, ctx, shape, CLASSES)
    loss = step()  # the gradients stay (unscaled) until the next step
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    finite = all_finite([loss]) and all(bool(g.isfinite().all()) for g in grads)
    gate = net.memory_gate.grad
    gate_norm = float(gate.norm()) if gate is not None else 0.0
    problems = ([] if finite else ["loss or gradients not finite"]) + (
        [] if gate_norm > 0 else ["no gradient on the memory gate"])
    return Outcome(not problems, f"loss {loss:.3f}; memory gate gradient norm {gate_norm:.2e}",
                   "; ".join(problems) or f"{ctx.settings.size}, hp, (B, C, D, H, W) = {shape}, "
                   f"{ctx.policy.name}")
