"""Convolutional Positional Encoding Generators (PEG).

Reference: Chu et al., "Conditional Positional Encodings for Vision Transformers" (CPVT),
https://arxiv.org/abs/2102.10882 ; used in place of SAM2's absolute position embedding as in
GSAM / the dual-adapter SAM2 paper (arXiv 2605.05979), so any input size works.

Both PEGs start with a zero projection (our choice; the papers do not give one). On a frozen,
pretrained trunk a default-initialised depthwise convolution would perturb every block-0 token by
about 60% of its norm. Zero-initialised, step 0 computes SAM2 without its absolute position
embedding in the trunk and without a position encoding in the decoder; the PEGs learn from there.
"""
import torch
from torch import nn


class TokenPEG(nn.Module):
    """Residual depthwise 3x3 convolution on a channels-last token map: ``x + dwconv(x)``.

    Args:
        dim: token width.
        kernel_size: depthwise kernel size (odd).
    """

    def __init__(self, dim: int, kernel_size: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _zero(self.proj)  # step 0: the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, H, W, C) -> (B, C, H, W) -> conv -> (B, H, W, C)
        pos = self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + pos


class EmbeddingPEG(nn.Module):
    """Position encoding for the mask decoder generated from the image embedding itself.

    Returns ``dwconv(x)`` with the embedding's shape (B, C, h, w): the decoder's ``image_pe``.
    """

    def __init__(self, dim: int, kernel_size: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _zero(self.proj)  # step 0: no position encoding in the decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def _zero(conv: nn.Conv2d) -> None:
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)


class SAM2DensePE(nn.Module):
    """SAM2's own decoder position encoding (the prompt encoder's random Fourier features),
    evaluated at the embedding's size so that non-square inputs work. No parameters."""

    def __init__(self, prompt_encoder: nn.Module):
        super().__init__()
        self._pe_layer = [prompt_encoder.pe_layer]  # a list: do not register it twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self._pe_layer[0]((h, w)).unsqueeze(0).to(x.dtype)  # (1, C, h, w)
