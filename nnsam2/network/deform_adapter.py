"""High-Performance (HP) adapter: bottleneck adapter with a modulated deformable convolution.

Reference: Mitsuoka & Hotta, "Prompt-Free and Efficient SAM2 Adaptation for Biomedical Semantic
Segmentation via Dual Adapters", arXiv 2605.05979; DCNv2: Zhu et al., https://arxiv.org/abs/1811.11168
"""
import math

import torch
from torch import nn

from nnsam2.network.bottleneck import BottleneckAdapter
from torchvision.ops import deform_conv2d


class ModulatedDeformConv2d(nn.Module):
    """DCNv2: a k x k convolution sampling at learned offsets, weighted by a learned mask.

    Offsets and mask come from a plain convolution that is zero-initialised (DCNv2's choice):
    at start-up it samples the regular grid with mask 0.5.
    """

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.kernel_size = kernel_size
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
        # torchvision has no reduced-precision kernel (and no CPU autocast rule): under autocast
        # run it in fp32 explicitly, as torchvision's CUDA autocast rule does, on every device.
        with torch.autocast(x.device.type, enabled=False):
            out = deform_conv2d(x.float(), offset.float(), self.weight.float(),
                                self.bias.float(), padding=self.kernel_size // 2,
                                mask=mask.float().sigmoid())
        return out.to(x.dtype)


class DeformableAdapter(BottleneckAdapter):
    """High-Performance adapter: the bottleneck with a DCNv2 3x3 as spatial mixing."""

    mix_layer = ModulatedDeformConv2d
