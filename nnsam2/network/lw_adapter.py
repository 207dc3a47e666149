"""Lightweight (LW) adapter: bottleneck adapter whose spatial mixing is a RepVGG-style
multi-branch convolution in training, fused into one 3x3 convolution for inference.

Reference: Mitsuoka & Hotta, arXiv 2605.05979; structural re-parameterisation: Ding et al.,
"RepVGG", https://arxiv.org/abs/2101.03697
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nnsam2.network.bottleneck import BottleneckAdapter


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


class RepAdapter(BottleneckAdapter):
    """Lightweight adapter: the bottleneck with a re-parameterisable multi-branch 3x3.

    ``reparameterize()`` fuses the 3x3 branches and also folds the scale, the up-projection's bias
    and the residual add into one matrix product, ``x + [h, 1] @ up_fused``: this saves the separate
    element-wise passes over the full-width token map, which are memory-bound.
    """

    mix_layer = RepConv3x3

    def __init__(self, dim: int, **kwargs):
        super().__init__(dim, **kwargs)
        self.register_buffer("up_fused", None)  # set by reparameterize()

    @property
    def is_fused(self) -> bool:
        return self.up_fused is not None

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fuse the mixing branches and the scaled up-projection, in place. Idempotent."""
        if self.up_fused is not None:
            return
        self.mix.reparameterize()
        fused = torch.cat([self.up.weight.t(), self.up.bias[None]], 0) * self.scale  # (c + 1, C)
        del self.up
        self.up_fused = fused.contiguous()
        super().train(False)

    def _fused_product(self, x: torch.Tensor, residual: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.hidden(x)
        h = torch.cat([h, h.new_ones(*h.shape[:-1], 1)], -1).reshape(-1, h.shape[-1] + 1)
        if residual is None:
            return (h @ self.up_fused).view_as(x)
        return torch.addmm(residual.reshape(-1, x.shape[-1]), h, self.up_fused).view_as(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up_fused is None:
            return super().forward(x)
        return self._fused_product(x, None)

    def add_to(self, x: torch.Tensor) -> torch.Tensor:
        if self.up_fused is None:
            return super().add_to(x)
        return self._fused_product(x, x)
