"""High-Performance (HP) adapter: bottleneck adapter with a modulated deformable convolution.

Reference: Mitsuoka & Hotta, "Prompt-Free and Efficient SAM2 Adaptation for Biomedical Semantic
Segmentation via Dual Adapters", arXiv 2605.05979; DCNv2: Zhu et al., https://arxiv.org/abs/1811.11168
"""
import math
from functools import partial
from typing import Optional

import torch
from torch import nn

from nnsam2.network.bottleneck import BottleneckAdapter
from nnsam2.network.deform_conv import IMPLS, deform_conv2d


class ModulatedDeformConv2d(nn.Module):
    """DCNv2: a k x k convolution sampling at learned offsets, weighted by a learned mask.

    Offsets and mask come from a plain convolution that is zero-initialised (DCNv2's choice):
    at start-up it samples the regular grid with mask 0.5.

    Args:
        channels: input and output width.
        kernel_size: odd k; the output keeps the input's size (padding k // 2).
        impl: ``embedding_bag`` (fast backward, bf16 under autocast), ``torchvision`` (the
            reference, fp32) or None (default: per device at each call, ``torchvision`` on CUDA,
            ``embedding_bag`` elsewhere); see :mod:`nnsam2.network.deform_conv`. An attribute:
            set it on a built network to switch, the parameters stay the same.
    """

    def __init__(self, channels: int, kernel_size: int = 3, *, impl: Optional[str] = None):
        super().__init__()
        if impl is not None and impl not in IMPLS:
            raise ValueError(f"unknown deformable convolution impl {impl!r}; choose one of {IMPLS}")
        self.kernel_size = kernel_size
        self.impl = impl
        k2 = kernel_size * kernel_size
        self.offset_mask = nn.Conv2d(channels, 3 * k2, kernel_size, padding=kernel_size // 2)
        self.weight = nn.Parameter(torch.empty(channels, channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k2 = self.kernel_size * self.kernel_size
        offset, mask = self.offset_mask(x).split([2 * k2, k2], dim=1)
        return deform_conv2d(x, offset, self.weight, self.bias, mask.sigmoid(),
                             padding=self.kernel_size // 2, impl=self.impl)


class DeformableAdapter(BottleneckAdapter):
    """High-Performance adapter: the bottleneck with a DCNv2 3x3 as spatial mixing.

    Args:
        dim: token width of the Hiera block it follows.
        deform_impl: implementation of the deformable convolution (see
            :class:`ModulatedDeformConv2d`); the parameters are the same for all.
        **kwargs: the bottleneck's settings (:class:`BottleneckAdapter`).
    """

    mix_layer = ModulatedDeformConv2d

    def __init__(self, dim: int, *, deform_impl: Optional[str] = None, **kwargs):
        super().__init__(dim, mix_layer=partial(ModulatedDeformConv2d, impl=deform_impl), **kwargs)
