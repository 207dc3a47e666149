"""Input stem: nnU-Net channel count -> the 3 channels of SAM2's patch embedding."""
import torch
from torch import nn


class InputStem(nn.Module):
    """Maps nnU-Net's C input channels to the 3 that SAM2's patch embedding takes.

    One channel is repeated (no parameters). Otherwise a learned 1x1 convolution, initialised as
    identity for 3 channels and as the channel mean for any other count.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"need at least one input channel, got {in_channels}")
        self.in_channels = in_channels
        self.proj = None if in_channels == 1 else nn.Conv2d(in_channels, 3, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.proj is None:
            return
        with torch.no_grad():
            if self.in_channels == 3:
                self.proj.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1))
            else:
                self.proj.weight.fill_(1.0 / self.in_channels)
            self.proj.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            return x.expand(-1, 3, -1, -1)
        return self.proj(x)
