"""Modulated deformable convolution (DCNv2) from gathers and one matrix product.

Same conventions as ``torchvision.ops.deform_conv2d`` (stride 1, dilation 1, one group, one
offset group): ``offset`` holds ``(dy, dx)`` per kernel position, kernel positions row-major;
samples are bilinear with zeros outside the input; the mask multiplies each sample.

Why not torchvision's op: its CPU backward is a slow element-wise loop, and it has no bf16
kernel (under autocast it must run in fp32). Here the sampling is ``F.embedding_bag`` (a fused
gather + weighted sum over the 4 bilinear corners, with bf16 kernels) on channels-last tokens,
and the convolution is one ``F.linear`` over the sampled columns, so autocast runs it in bf16.
The adapter hands over (B, C, H, W) views of channels-last (B, H, W, C) tokens, so going
channels-last costs no copy there.

Which one runs is chosen per device (:func:`default_impl`): this one on the CPU, torchvision's
in fp32 on CUDA, where the backward of ``embedding_bag``'s ``per_sample_weights`` has a bf16 kernel
only from torch 2.13 on (documentation/methods.md). Both take the same parameters.

Reference: Zhu et al., "Deformable ConvNets v2: More Deformable, Better Results",
https://arxiv.org/abs/1811.11168
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d as torchvision_deform_conv2d

IMPLS = ("embedding_bag", "torchvision")


def default_impl(device: torch.device) -> str:
    """``torchvision`` on CUDA (fp32, any torch and GPU), ``embedding_bag`` elsewhere (fast CPU
    backward; torchvision has no MPS kernel)."""
    return "torchvision" if torch.device(device).type == "cuda" else "embedding_bag"


def sample_positions(offset: torch.Tensor, kernel_size: int,
                     padding: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Absolute fp32 sampling rows and columns, each (B, Ho, Wo, k*k).

    Args:
        offset: (B, 2*k*k, Ho, Wo), ``(dy, dx)`` per kernel position (torchvision's layout).
        kernel_size: k.
        padding: zero padding of the input on each side.
    """
    b, _, ho, wo = offset.shape
    k2 = kernel_size * kernel_size
    # Coordinates in fp32 even under bf16 autocast: bf16 has 8 significant bits, too few for
    # positions on a 64-pixel map.
    off = offset.float().unflatten(1, (k2, 2)).permute(0, 3, 4, 1, 2)  # (B, k2, 2, Ho, Wo) -> (B, Ho, Wo, k2, 2)
    grid = torch.arange(kernel_size, device=offset.device, dtype=torch.float32)
    ki = grid.repeat_interleave(kernel_size)  # kernel row of each of the k2 positions
    kj = grid.repeat(kernel_size)  # kernel column
    rows = torch.arange(ho, device=offset.device, dtype=torch.float32).view(ho, 1, 1)
    cols = torch.arange(wo, device=offset.device, dtype=torch.float32).view(1, wo, 1)
    return rows - padding + ki + off[..., 0], cols - padding + kj + off[..., 1]


def bilinear_taps(y: torch.Tensor, x: torch.Tensor, height: int,
                  width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flat input indices and weights of the 4 bilinear corners, each (..., 4).

    A corner outside the input gets weight 0 (and a valid dummy index): zero padding, as in
    torchvision. The weights stay differentiable in ``y`` and ``x`` (the offsets' gradient).
    """
    y0, x0 = y.floor(), x.floor()
    ly, lx = y - y0, x - x0
    wy = torch.stack([1 - ly, ly], -1)  # (..., 2): corners y0, y0 + 1
    wx = torch.stack([1 - lx, lx], -1)
    step = torch.arange(2, device=y.device)
    cy = y0.long().unsqueeze(-1) + step  # (..., 2)
    cx = x0.long().unsqueeze(-1) + step
    valid_y = (cy >= 0) & (cy < height)
    valid_x = (cx >= 0) & (cx < width)
    weight = (wy * valid_y).unsqueeze(-1) * (wx * valid_x).unsqueeze(-2)  # (..., 2, 2)
    index = cy.clamp(0, height - 1).unsqueeze(-1) * width + cx.clamp(0, width - 1).unsqueeze(-2)
    return index.flatten(-2), weight.flatten(-2)  # (..., 2, 2) -> (..., 4)


def modulated_taps(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, kernel_size: int,
                   padding: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokens (B*H*W, C) with the corner indices and mask-weighted corner weights, each (N, 4).

    N = B * Ho * Wo * k*k samples, ordered (B, Ho, Wo, k*k); indices address rows of tokens.
    """
    b, c, h, w = x.shape
    y, xs = sample_positions(offset, kernel_size, padding)
    index, weight = bilinear_taps(y, xs, h, w)  # (B, Ho, Wo, k2, 4)
    index = index + torch.arange(b, device=x.device).view(b, 1, 1, 1, 1) * (h * w)
    weight = weight * mask.permute(0, 2, 3, 1).unsqueeze(-1)  # (B, k2, Ho, Wo) -> (B, Ho, Wo, k2, 1)
    tokens = x.permute(0, 2, 3, 1).reshape(b * h * w, c)  # (B, C, H, W) -> (B*H*W, C)
    return tokens, index.reshape(-1, 4), weight.reshape(-1, 4).to(tokens.dtype)


def sampled_columns(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor,
                    kernel_size: int, padding: int) -> torch.Tensor:
    """The modulated samples of every kernel position, (B * Ho * Wo, k*k * C) in x's dtype."""
    b, c, _, _ = x.shape
    _, k2, ho, wo = mask.shape
    tokens, index, weight = modulated_taps(x, offset, mask, kernel_size, padding)
    samples = F.embedding_bag(index, tokens, mode="sum", per_sample_weights=weight)
    return samples.view(b * ho * wo, k2 * c)  # (B*Ho*Wo*k2, C) -> (B*Ho*Wo, k2*C)


def _torchvision(x, offset, weight, bias, mask, padding: int) -> torch.Tensor:
    # No reduced-precision kernel (and no CPU autocast rule): under autocast run it in fp32,
    # as torchvision's own CUDA autocast rule does, and return the input's dtype.
    with torch.autocast(x.device.type, enabled=False):
        out = torchvision_deform_conv2d(x.float(), offset.float(), weight.float(),
                                        None if bias is None else bias.float(),
                                        padding=padding, mask=mask.float())
    return out.to(x.dtype)


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                  bias: Optional[torch.Tensor], mask: torch.Tensor, *, padding: int = 0,
                  impl: Optional[str] = None) -> torch.Tensor:
    """Modulated deformable convolution, stride 1: (B, C, H, W) -> (B, C_out, Ho, Wo).

    Args:
        x: input (B, C, H, W); channels-last memory avoids a copy.
        offset: (B, 2*k*k, Ho, Wo), ``(dy, dx)`` per kernel position.
        weight: (C_out, C, k, k), as ``nn.Conv2d``.
        bias: (C_out,) or None.
        mask: (B, k*k, Ho, Wo) modulation, multiplied with each sample.
        padding: zero padding on each side.
        impl: ``embedding_bag`` (this module), ``torchvision`` (the reference; fp32 under
            autocast, since it has no reduced-precision kernel) or None (:func:`default_impl`
            of ``x``'s device).
    """
    impl = impl or default_impl(x.device)
    if impl == "torchvision":
        return _torchvision(x, offset, weight, bias, mask, padding)
    if impl != "embedding_bag":
        raise ValueError(f"unknown deformable convolution impl {impl!r}; choose one of {IMPLS}")
    c_out, c_in, kh, kw = weight.shape
    if kh != kw or c_in != x.shape[1]:
        raise ValueError(f"need a square kernel over {x.shape[1]} channels, got {tuple(weight.shape)}")
    b, _, h, w = x.shape
    ho, wo = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    if offset.shape != (b, 2 * kh * kw, ho, wo) or mask.shape != (b, kh * kw, ho, wo):
        raise ValueError(f"offset {tuple(offset.shape)} and mask {tuple(mask.shape)} do not fit "
                         f"a {kh}x{kw} kernel with padding {padding} on {tuple(x.shape)}")
    columns = sampled_columns(x, offset, mask, kh, padding)
    flat_weight = weight.permute(0, 2, 3, 1).reshape(c_out, kh * kw * c_in)  # (C_out, C, k, k) -> (C_out, k*k*C)
    out = F.linear(columns, flat_weight, bias)  # (B*Ho*Wo, C_out)
    return out.view(b, ho, wo, c_out).permute(0, 3, 1, 2)  # (B, Ho, Wo, C_out) -> (B, C_out, Ho, Wo)
