"""Low-rank adaptation of linear layers.

Reference: Hu et al., "LoRA", https://arxiv.org/abs/2106.09685 ; placement as in SAM2LoRA
(arXiv 2510.10288): every Hiera block's ``attn.qkv`` and the mask decoder transformer's attention
linears.
"""
import math
from typing import Callable, List

import torch
import torch.nn.functional as F
from torch import nn


class LoRALinear(nn.Module):
    """``inner(x) + (alpha / r) * B(A(dropout(x)))`` with B zero-initialised.

    Args:
        inner: the frozen linear layer being adapted.
        rank: r, the rank of the update.
        alpha: scaling numerator (the update is scaled by alpha / r).
        dropout: dropout on the LoRA branch's input.
    """

    def __init__(self, inner: nn.Linear, rank: int = 8, alpha: float = 16.0, dropout: float = 0.1):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.inner = inner
        self.rank = rank
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout)
        w = inner.weight
        self.lora_A = nn.Parameter(torch.empty(rank, w.shape[1], device=w.device, dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.empty(w.shape[0], rank, device=w.device, dtype=w.dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)  # step 0 equals the frozen layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)
        return self.inner(x) + self.scaling * update

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain linear layer with the low-rank update folded into its weight."""
        base = self.inner
        out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        out = out.to(device=base.weight.device, dtype=base.weight.dtype)
        out.weight.copy_(base.weight + self.scaling * (self.lora_B @ self.lora_A))
        if base.bias is not None:
            out.bias.copy_(base.bias)
        out.requires_grad_(False)
        return out


def inject_lora(root: nn.Module, select: Callable[[str, nn.Linear], bool], *, rank: int,
                alpha: float, dropout: float) -> List[str]:
    """Wrap every ``nn.Linear`` under ``root`` for which ``select(name, layer)`` holds."""
    targets = [(n, m) for n, m in root.named_modules()
               if isinstance(m, nn.Linear) and select(n, m)]
    for name, layer in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        setattr(parent, attr, LoRALinear(layer, rank=rank, alpha=alpha, dropout=dropout))
    return [n for n, _ in targets]


def merge_lora(root: nn.Module) -> int:
    """Replace every LoRALinear under ``root`` by its merged plain linear; returns how many."""
    wrapped = [(n, m) for n, m in root.named_modules() if isinstance(m, LoRALinear)]
    for name, layer in wrapped:
        parent_name, _, attr = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        setattr(parent, attr, layer.merged())
    return len(wrapped)
