"""Hiera trunk with injected PEG and per-block adapters (sam2's Hiera is wrapped, not forked)."""
from typing import Callable, List, Optional

import torch
from torch import nn
from sam2.modeling.backbones.hieradet import Hiera


class AdaptedBlock(nn.Module):
    """A Hiera block followed by a residual adapter: ``y = block(x); y + adapter(y)``."""

    def __init__(self, inner: nn.Module, adapter: nn.Module):
        super().__init__()
        self.inner = inner
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inner(x)  # (B, H, W, C)
        return self.adapter.add_to(x)


class PEGTrunk(nn.Module):
    """Wraps a sam2 ``Hiera``; with a PEG its absolute position embedding is removed and the PEG
    is applied after block ``peg_after`` (as in CPVT/GSAM). Without one, Hiera runs unchanged.

    Args:
        inner: the Hiera trunk.
        peg: a (B, H, W, C) -> (B, H, W, C) module, or None to keep SAM2's position embedding.
        peg_after: index of the block after which the PEG is applied.
    """

    def __init__(self, inner: Hiera, peg: Optional[nn.Module] = None, peg_after: int = 0):
        super().__init__()
        self.inner = inner
        self.peg = peg
        self.peg_after = peg_after
        self.channel_list = inner.channel_list  # checked by sam2's ImageEncoder
        if peg is not None:
            del inner.pos_embed, inner.pos_embed_window  # replaced by the PEG, never used

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        hiera = self.inner
        if self.peg is None:
            return hiera(x)
        x = hiera.patch_embed(x)  # (B, H/4, W/4, C)
        outputs = []
        for i, block in enumerate(hiera.blocks):
            x = block(x)
            if i == self.peg_after:
                x = self.peg(x)
            if i in hiera.stage_ends and (hiera.return_interm_layers or i == hiera.stage_ends[-1]):
                outputs.append(x.permute(0, 3, 1, 2))  # (B, H, W, C) -> (B, C, H, W)
        return outputs


def inject_adapters(hiera: Hiera, make_adapter: Callable[[int], nn.Module]) -> None:
    """Wrap every Hiera block with ``AdaptedBlock(block, make_adapter(block.dim_out))``."""
    for i, block in enumerate(hiera.blocks):
        hiera.blocks[i] = AdaptedBlock(block, make_adapter(block.dim_out))
