"""Lightweight (LW) adapter: bottleneck adapter whose spatial mixing is a RepVGG-style
multi-branch convolution in training, fused into one 3x3 convolution for inference.

Reference: Mitsuoka & Hotta, arXiv 2605.05979; structural re-parameterisation: Ding et al.,
"RepVGG", https://arxiv.org/abs/2101.03697
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def _fuse_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the preceding bias-free convolution kernel."""
    std = (bn.running_var + bn.eps).sqrt()
    gain = bn.weight / std
    return kernel * gain.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * gain


class RepConv3x3(nn.Module):
    """3x3 conv+BN, 1x1 conv+BN and identity BN summed; ``reparameterize()`` fuses them.

    Args:
        channels: input and output channels.
        norm_layer: normalisation type of each branch.
    """

    def __init__(self, channels: int, norm_layer: type = nn.BatchNorm2d):
        super().__init__()
        self.channels = channels
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn3 = norm_layer(channels)
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn1 = norm_layer(channels)
        self.bn_id = norm_layer(channels)
        self.fused: Optional[nn.Conv2d] = None

    @property
    def is_fused(self) -> bool:
        return self.fused is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x)
        return self.bn3(self.conv3(x)) + self.bn1(self.conv1(x)) + self.bn_id(x)

    def _equivalent_kernel_bias(self) -> Tuple[torch.Tensor, torch.Tensor]:
        k3, b3 = _fuse_bn(self.conv3.weight, self.bn3)
        k1, b1 = _fuse_bn(F.pad(self.conv1.weight, [1, 1, 1, 1]), self.bn1)
        eye = torch.zeros_like(self.conv3.weight)
        eye[torch.arange(self.channels), torch.arange(self.channels), 1, 1] = 1.0
        kid, bid = _fuse_bn(eye, self.bn_id)
        return k3 + k1 + kid, b3 + b1 + bid

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the three branches by one 3x3 convolution with bias, in place. Idempotent."""
        if self.fused is not None:
            return
        kernel, bias = self._equivalent_kernel_bias()
        fused = nn.Conv2d(self.channels, self.channels, 3, padding=1, bias=True)
        fused = fused.to(device=kernel.device, dtype=kernel.dtype)
        fused.weight.copy_(kernel)
        fused.bias.copy_(bias)
        fused.requires_grad_(False)
        for name in ("conv3", "bn3", "conv1", "bn1", "bn_id"):
            delattr(self, name)
        self.fused = fused
        super().train(False)

    def train(self, mode: bool = True):
        if mode and self.fused is not None:
            raise RuntimeError(
                "this Lightweight adapter has been re-parameterised for inference and cannot be "
                "trained any more; rebuild the network and load the training checkpoint instead")
        return super().train(mode)


class RepAdapter(nn.Module):
    """Linear down -> multi-branch 3x3 (RepConv3x3) -> GELU -> Linear up (zero-init), scaled.

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
        self.mix = RepConv3x3(hidden)
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
