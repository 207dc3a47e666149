"""The bottleneck shell shared by the HP and LW adapters (they differ in the spatial mixing)."""
from typing import Callable, Optional

import torch
from torch import nn


class BottleneckAdapter(nn.Module):
    """Linear down -> spatial mixing -> GELU -> Linear up (zero-init), scaled; (B, H, W, C) tokens.

    Subclasses set ``mix_layer``, a type taking the hidden width and mapping (B, c, H, W) to itself.

    Args:
        dim: token width of the Hiera block it follows.
        bottleneck_ratio: hidden width as a fraction of ``dim``.
        scale: fixed scale of the returned residual branch.
        act_layer: activation type.
        mix_layer: overrides the class's ``mix_layer`` (e.g. the same type with other settings).
    """

    mix_layer: type = nn.Identity

    def __init__(self, dim: int, *, bottleneck_ratio: float = 0.25, scale: float = 0.5,
                 act_layer: type = nn.GELU,
                 mix_layer: Optional[Callable[[int], nn.Module]] = None):
        super().__init__()
        hidden = max(4, int(round(dim * bottleneck_ratio)))
        self.scale = scale
        self.down = nn.Linear(dim, hidden)
        self.mix = (mix_layer or self.mix_layer)(hidden)
        self.act = act_layer()
        self.up = nn.Linear(hidden, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Zero up-projection: an untrained adapter leaves SAM2 unchanged.
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) tokens -> (B, H, W, c) activations before the up-projection."""
        h = self.down(x).permute(0, 3, 1, 2)  # (B, H, W, c) -> (B, c, H, W)
        return self.act(self.mix(h)).permute(0, 2, 3, 1)  # (B, c, H, W) -> (B, H, W, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(self.hidden(x))

    def add_to(self, x: torch.Tensor) -> torch.Tensor:
        """The residual output ``x + self(x)`` (subclasses may compute it in fewer passes)."""
        return x + self(x)
