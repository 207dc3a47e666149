"""Forward + backward time of deformable-convolution implementations on the HP adapter's shapes.

``python -m experiments.deform_conv_candidates --size tiny --patch 256 256 --batch-size 2``
times each candidate on every Hiera stage's adapter shape (bottleneck width, token map) and sums
them over the stage's blocks, i.e. the deformable convolutions of one HP training step. Besides
the two implementations of :mod:`nnsam2.network.deform_conv` it times two other formulations
that were considered: ``grid_sample`` (one ``F.grid_sample`` call for the 9 positions; it needs
fp32 coordinates, hence fp32 samples under autocast), ``index_select`` (gather the 4 corners,
weight and sum them in separate element-wise ops) and ``index_add`` (``embedding_bag`` forward
with a hand-written backward: ``index_add_`` instead of embedding_bag's sort-based one).
"""
import argparse
import os
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F

from nnsam2.benchmark.measure import time_repeated
from nnsam2.network.configs import get_size
from nnsam2.network.deform_conv import IMPLS, deform_conv2d, modulated_taps, sample_positions


def _grid_sample(x, offset, weight, bias, mask, padding):
    b, c, h, w = x.shape
    c_out, _, k, _ = weight.shape
    _, k2, ho, wo = mask.shape
    y, xs = sample_positions(offset, k, padding)  # (B, Ho, Wo, k2)
    # align_corners=False: pixel p sits at normalised (2p + 1) / size - 1.
    grid = torch.stack([(2 * xs + 1) / w - 1, (2 * y + 1) / h - 1], -1).flatten(1, 2)  # (B, Ho*Wo, k2, 2)
    samples = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)  # (B, C, Ho*Wo, k2)
    samples = samples * mask.flatten(2).transpose(1, 2).unsqueeze(1)  # mask (B, k2, Ho*Wo) -> (B, 1, Ho*Wo, k2)
    columns = samples.permute(0, 2, 1, 3).reshape(b * ho * wo, c * k2)  # (B, C, Ho*Wo, k2) -> (B*Ho*Wo, C*k2)
    out = F.linear(columns, weight.flatten(1), bias)  # weight (C_out, C, k, k) -> (C_out, C*k2)
    return out.view(b, ho, wo, c_out).permute(0, 3, 1, 2)  # (B, Ho, Wo, C_out) -> (B, C_out, Ho, Wo)


def _index_select(x, offset, weight, bias, mask, padding):
    b, c, _, _ = x.shape
    c_out, _, k, _ = weight.shape
    _, k2, ho, wo = mask.shape
    tokens, index, taps = modulated_taps(x, offset, mask, k, padding)
    corners = tokens.index_select(0, index.flatten()).view(-1, 4, c)  # (N*4, C) -> (N, 4, C)
    columns = (corners * taps.unsqueeze(-1)).sum(1).view(b * ho * wo, k2 * c)  # (N, C) -> (B*Ho*Wo, k2*C)
    out = F.linear(columns, weight.permute(0, 2, 3, 1).reshape(c_out, k2 * c), bias)  # (C_out, C, k, k) -> (C_out, k2*C)
    return out.view(b, ho, wo, c_out).permute(0, 3, 1, 2)  # (B, Ho, Wo, C_out) -> (B, C_out, Ho, Wo)


class _GatherSumIndexAdd(torch.autograd.Function):
    """embedding_bag forward; backward by index_add_ (no sort) and a gathered dot product."""

    @staticmethod
    def forward(ctx, tokens, index, taps):
        ctx.save_for_backward(tokens, index, taps)
        return F.embedding_bag(index, tokens, mode="sum", per_sample_weights=taps)

    @staticmethod
    def backward(ctx, grad):
        tokens, index, taps = ctx.saved_tensors
        flat = index.flatten()
        corners = tokens.index_select(0, flat).view(*index.shape, -1)  # (N*4, C) -> (N, 4, C)
        grad_taps = torch.einsum("njc,nc->nj", corners, grad)
        spread = (grad.unsqueeze(1) * taps.unsqueeze(-1)).flatten(0, 1)  # (N, 4, C) -> (N*4, C)
        return torch.zeros_like(tokens).index_add_(0, flat, spread), None, grad_taps


def _index_add(x, offset, weight, bias, mask, padding):
    b, c, _, _ = x.shape
    c_out, _, k, _ = weight.shape
    _, k2, ho, wo = mask.shape
    tokens, index, taps = modulated_taps(x, offset, mask, k, padding)
    columns = _GatherSumIndexAdd.apply(tokens, index, taps).view(b * ho * wo, k2 * c)  # (N, C) -> (B*Ho*Wo, k2*C)
    out = F.linear(columns, weight.permute(0, 2, 3, 1).reshape(c_out, k2 * c), bias)  # (C_out, C, k, k) -> (C_out, k2*C)
    return out.view(b, ho, wo, c_out).permute(0, 3, 1, 2)  # (B, Ho, Wo, C_out) -> (B, C_out, Ho, Wo)


def candidates() -> Dict[str, Callable]:
    """name -> fn(x, offset, weight, bias, mask, padding)."""
    shipped = {impl: (lambda *a, impl=impl: deform_conv2d(*a[:5], padding=a[5], impl=impl))
               for impl in IMPLS}
    return dict(shipped, grid_sample=_grid_sample, index_select=_index_select,
                index_add=_index_add)


def adapter_shapes(size: str, patch: Tuple[int, int], ratio: float = 0.25) -> List[Tuple[int, int, int, int]]:
    """(blocks, bottleneck width, H, W) per Hiera stage; tokens start at patch / 4."""
    cfg = get_size(size)
    return [(blocks, max(4, round(cfg.embed_dim * 2**i * ratio)), patch[0] // 4 // 2**i,
             patch[1] // 4 // 2**i) for i, blocks in enumerate(cfg.stages)]


def time_candidate(fn: Callable, channels: int, hw: Tuple[int, int], batch: int, *,
                   warmup: int, repeats: int, max_offset: float = 2.0) -> Dict[str, float]:
    """Forward + backward of one 3x3 deformable convolution (all inputs require gradients)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *hw, channels, generator=g).permute(0, 3, 1, 2)  # channels-last, as in the adapter
    offset = (torch.rand(batch, 18, *hw, generator=g) * 2 - 1) * max_offset
    mask = torch.rand(batch, 9, *hw, generator=g)
    weight = torch.randn(channels, channels, 3, 3, generator=g) * channels**-0.5
    bias = torch.zeros(channels)
    inputs = [t.requires_grad_() for t in (x, offset, mask, weight, bias)]
    grad_out = torch.randn(batch, channels, *hw, generator=g)

    def step() -> None:
        out = fn(inputs[0], inputs[1], inputs[3], inputs[4], inputs[2], 1)
        torch.autograd.backward(out, grad_out)
        for t in inputs:
            t.grad = None

    return time_repeated(step, x.device, warmup=warmup, repeats=repeats)


def measure(size: str, patch: Tuple[int, int], batch: int, *, warmup: int = 2,
            repeats: int = 7) -> Dict[str, dict]:
    """{candidate: {"per_stage_ms": [...], "step_ms": sum over all blocks}} (medians)."""
    result = {}
    for name, fn in candidates().items():
        per_stage = [time_candidate(fn, c, (h, w), batch, warmup=warmup,
                                    repeats=repeats)["median_ms"]
                     for _, c, h, w in adapter_shapes(size, patch)]
        step = sum(t * n for t, (n, *_) in zip(per_stage, adapter_shapes(size, patch)))
        result[name] = dict(per_stage_ms=per_stage, step_ms=step)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="tiny")
    p.add_argument("--patch", nargs=2, type=int, default=(256, 256), metavar=("H", "W"))
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    shapes = adapter_shapes(args.size, tuple(args.patch))
    load_before = os.getloadavg()[0]
    result = measure(args.size, tuple(args.patch), args.batch_size, warmup=args.warmup,
                     repeats=args.repeats)
    print(f"forward + backward, median ms; torch threads {args.threads}; batch "
          f"{args.batch_size}; 1-minute load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    header = " | ".join(f"{n} x C={c} {h}x{w}" for n, c, h, w in shapes)
    print(f"| candidate | {header} | all blocks |")
    print("|---" * (len(shapes) + 2) + "|")
    for name, row in result.items():
        cells = " | ".join(f"{t:.2f}" for t in row["per_stage_ms"])
        print(f"| {name} | {cells} | {row['step_ms']:.1f} |")


if __name__ == "__main__":
    main()
