"""Checks 2 and 5: each deformable-convolution implementation in the run's dtype, against
torchvision's op in fp32 (forward and every gradient), and its speed at the planned patch."""
import time
from typing import Dict, Tuple

import torch

from nnsam2.benchmark.acceptance.core import Context, Outcome, median_ms, policy_autocast
from nnsam2.benchmark.measure import synchronize
from nnsam2.network.configs import DEFAULT_BOTTLENECK, SIZES
from nnsam2.network.deform_conv import deform_conv2d

KERNEL = 3
# Largest |implementation - torchvision fp32| over the largest |torchvision fp32| value, for the
# output and each gradient: fp32 is rounding only; bf16 keeps 8 significant bits, fp16 11.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}
PARITY_SHAPE = (2, 16, 24, 24)  # (B, C, H, W): small, the parity does not depend on the size
WARMUP = 2


def dcn_inputs(shape: Tuple[int, int, int, int], device: torch.device) -> Dict[str, torch.Tensor]:
    """Random fp32 leaves of a modulated 3x3 deformable convolution on (B, C, H, W) ``shape``:
    offsets of a few pixels (never integral), masks in (0, 1)."""
    b, c, h, w = shape
    k2 = KERNEL * KERNEL
    g = torch.Generator().manual_seed(0)
    tensors = dict(x=torch.randn(b, c, h, w, generator=g),
                   offset=2 * torch.randn(b, 2 * k2, h, w, generator=g),
                   weight=torch.randn(c, c, KERNEL, KERNEL, generator=g) / (c * k2) ** 0.5,
                   bias=torch.randn(c, generator=g),
                   mask=torch.rand(b, k2, h, w, generator=g),
                   grad_out=torch.randn(b, c, h, w, generator=g))
    return {k: v.to(device).requires_grad_(k != "grad_out") for k, v in tensors.items()}


def forward_backward(t: Dict[str, torch.Tensor], impl: str,
                     dtype: torch.dtype = None) -> Dict[str, torch.Tensor]:
    """Output and gradients of one call; ``dtype``: the input the adapter hands over (its
    down-projection's output dtype under autocast)."""
    for v in t.values():
        v.grad = None
    x = t["x"] if dtype is None else t["x"].to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)  # the adapter's tokens are channels-last
    out = deform_conv2d(x, t["offset"], t["weight"], t["bias"], t["mask"], padding=KERNEL // 2,
                        impl=impl)
    (out.float() * t["grad_out"]).sum().backward()
    return dict(out=out.detach().float(), **{k: t[k].grad.float() for k in
                                             ("x", "offset", "weight", "bias", "mask")})


def check_parity(ctx: Context, impl: str) -> Outcome:
    t = dcn_inputs(PARITY_SHAPE, ctx.device)
    reference = forward_backward(t, "torchvision")
    with policy_autocast(ctx):
        got = forward_backward(t, impl, ctx.policy.autocast_dtype)
    errors = {k: float((got[k] - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
              for k, ref in reference.items()}
    finite = all(bool(v.isfinite().all()) for v in got.values())
    worst = max(errors, key=errors.get)
    tol = TOLERANCE[ctx.policy.name]
    figure = f"{ctx.policy.name}: worst relative error {errors[worst]:.1e} ({worst})"
    return Outcome(finite and errors[worst] <= tol, figure,
                   f"fwd + bwd vs torchvision fp32 on {PARITY_SHAPE}; tolerance {tol:g}"
                   + ("" if finite else "; NOT FINITE"))


def stage1_shape(ctx: Context) -> Tuple[int, int, int, int]:
    """(B, C, H, W) the first HP adapter's DCN sees at the planned patch: the bottleneck of
    Hiera's first stage, at a quarter of the patch (patch embedding stride 4)."""
    s = ctx.settings
    channels = int(SIZES[s.size].embed_dim * DEFAULT_BOTTLENECK["hp"])
    return (s.batch, channels, s.patch[0] // 4, s.patch[1] // 4)


def check_speed(ctx: Context, impl: str) -> Outcome:
    shape = stage1_shape(ctx)
    t = dcn_inputs(shape, ctx.device)
    seconds = []
    with policy_autocast(ctx):
        for i in range(WARMUP + ctx.settings.repeats):
            start = time.perf_counter()
            got = forward_backward(t, impl, ctx.policy.autocast_dtype)
            synchronize(ctx.device)
            if i >= WARMUP:
                seconds.append(time.perf_counter() - start)
    finite = bool(got["out"].isfinite().all())
    return Outcome(finite, f"{median_ms(seconds):.2f} ms per fwd + bwd",
                   f"{ctx.policy.name}, (B, C, H, W) = {shape}: the first stage's adapter at "
                   f"the {ctx.settings.patch[0]}x{ctx.settings.patch[1]} patch; informational"
                   + ("" if finite else "; NOT FINITE"))
