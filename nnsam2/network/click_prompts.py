"""Clicks as prompts of the multi-class decoder: SAM2's own point encoding plus a class embedding.

A click is (class, y, x) in input pixels; class 0 says "this is background". Its token is SAM2's
frozen point encoding: the prompt encoder's random Fourier encoding of the location plus SAM2's
positive-point embedding (class > 0) or negative-point embedding (class 0), plus a trainable
per-class embedding (zero at start: a pretrained SAM2 reads the click as its own point prompt).
The tokens join the decoder's token sequence after the class tokens.

Clicks reach the network as one extra input channel, a click map (0: no click, ``class + 1`` at a
clicked pixel), so that nnU-Net's padding, sliding-window slicing and test-time mirroring carry
them to each patch unchanged. A sample whose map is empty is decoded exactly as without clicks.
"""
from typing import List

import torch
from torch import nn

NEGATIVE, POSITIVE = 0, 1  # indices of SAM2's point_embeddings (its label 0 / label 1)
SIGMA = 16.0  # pixels: the dense part's reach around a click (one stride-16 embedding cell)


class ClickPrompts(nn.Module):
    """Decoder tokens for clicks.

    Args:
        prompt_encoder: SAM2's (frozen) prompt encoder: ``pe_layer`` and ``point_embeddings``.
        num_classes: classes a click may name (background included).
    """

    def __init__(self, prompt_encoder: nn.Module, num_classes: int):
        super().__init__()
        self._prompt_encoder = [prompt_encoder]  # a list: its weights are the network's already
        self.class_embed = nn.Embedding(num_classes, prompt_encoder.embed_dim)
        nn.init.zeros_(self.class_embed.weight)
        # the dense part: each click adds its class's vector around it to the image embedding
        # (stride 16) and to the decoder's stride-8 and stride-4 features (SAM2's conv_s1 /
        # conv_s0 widths): the decoder localises with the high-resolution features, and a
        # class vector at stride 16 alone barely moves the mask near the click from scratch
        dim = prompt_encoder.embed_dim
        self.dense_embed = nn.ModuleList(nn.Embedding(num_classes, c)
                                         for c in (dim, dim // 4, dim // 8))
        for embedding in self.dense_embed:
            nn.init.zeros_(embedding.weight)

    def tokens(self, clicks: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, N, 3) clicks (class, y, x) -> (B, N, C) tokens for an input of height x width."""
        encoder = self._prompt_encoder[0]
        label = clicks[..., 0].long()
        points = clicks[..., [2, 1]].float() + 0.5  # SAM2 takes (x, y) at pixel centres
        pe = encoder.pe_layer.forward_with_coords(points, (height, width))  # (B, N, C)
        kind = torch.stack([encoder.point_embeddings[NEGATIVE].weight[0],
                            encoder.point_embeddings[POSITIVE].weight[0]])  # (2, C)
        return pe + kind[(label > 0).long()] + self.class_embed(label)


    def dense(self, clicks: torch.Tensor, height: int, width: int, level: int,
              grid: tuple) -> torch.Tensor:
        """(B, N, 3) clicks -> (B, C_level, h, w) for feature level 0 (stride 16), 1 (stride 8)
        or 2 (stride 4): each click's class vector weighted by a Gaussian of SIGMA pixels."""
        h, w = grid
        ys = (torch.arange(h, device=clicks.device) + 0.5) * height / h  # cell centres, pixels
        xs = (torch.arange(w, device=clicks.device) + 0.5) * width / w
        dy = (ys[None, None, :] - clicks[..., 1:2].float() - 0.5) / SIGMA
        dx = (xs[None, None, :] - clicks[..., 2:3].float() - 0.5) / SIGMA
        weight = torch.exp(-0.5 * (dy[..., :, None] ** 2 + dx[..., None, :] ** 2))  # B, N, h, w
        vectors = self.dense_embed[level](clicks[..., 0].long())  # (B, N, C_level)
        return torch.einsum("bnhw,bnc->bchw", weight, vectors)


def clicks_from_map(click_map: torch.Tensor) -> List[torch.Tensor]:
    """(B, H, W) click maps -> per sample an (n, 3) float tensor of (class, y, x), row-major."""
    out = []
    for sample in click_map:
        y, x = torch.nonzero(sample > 0.5, as_tuple=True)
        label = sample[y, x].round() - 1
        out.append(torch.stack([label, y.to(label.dtype), x.to(label.dtype)], dim=1).float())
    return out


def groups_by_count(clicks: List[torch.Tensor]) -> List[tuple]:
    """[(number of clicks, sample indices)] so that each decoder pass has one token count: SAM2's
    decoder attends over every token, so padding would change the other samples' results."""
    counts = {}
    for index, c in enumerate(clicks):
        counts.setdefault(len(c), []).append(index)
    return sorted(counts.items())
