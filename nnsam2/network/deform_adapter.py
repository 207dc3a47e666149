"""High-Performance (HP) adapter: bottleneck adapter with a modulated deformable convolution.

Reference: Mitsuoka & Hotta, "Prompt-Free and Efficient SAM2 Adaptation for Biomedical Semantic
Segmentation via Dual Adapters", arXiv 2605.05979; DCNv2: Zhu et al., https://arxiv.org/abs/1811.11168
"""
import math

import torch
from torch import nn
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
        return deform_conv2d(x, offset, self.weight, self.bias,
                             padding=self.kernel_size // 2, mask=mask.sigmoid())


class DeformableAdapter(nn.Module):
    """Linear down -> DCNv2 3x3 -> GELU -> Linear up (zero-init), scaled; on (B, H, W, C) tokens.

    Args:
        dim: token width of the Hiera block it follows.
        bottleneck_ratio: hidden width as a fraction of ``dim``.
        scale: fixed scale of the returned residual branch.
        act_layer: activation type.
    """

    def __init__(self, dim: int, *, bottleneck_ratio: float = 0.25, scale: float = 0.5,
                 act_layer: type = nn.GELU):
        super().__init__()
        hidden = max(4, int(round(dim * bottleneck_ratio)))
        self.scale = scale
        self.down = nn.Linear(dim, hidden)
        self.mix = ModulatedDeformConv2d(hidden)
        self.act = act_layer()
        self.up = nn.Linear(hidden, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Zero up-projection: an untrained adapter leaves SAM2 unchanged.
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(x).permute(0, 3, 1, 2)  # (B, H, W, c) -> (B, c, H, W)
        h = self.act(self.mix(h)).permute(0, 2, 3, 1)  # (B, c, H, W) -> (B, H, W, c)
        return self.scale * self.up(h)
