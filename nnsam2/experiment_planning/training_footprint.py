"""Training-memory estimate of the adapted SAM2, used by the planner to pick the batch size.

The activation memory is measured, not guessed: one forward pass with autograd on, counting the
bytes of every tensor autograd saves for the backward pass (saved_tensors_hooks), at a reference
patch no larger than 256x256 and scaled linearly with the pixel count (Hiera attends in windows,
the global blocks use memory-efficient attention).
"""
import math
from typing import Optional, Sequence

import torch

from nnsam2.network import AdapterCfg, build_memory_network, build_network

REFERENCE_PIXELS = 256 * 256
BF16_FACTOR = 0.5  # activations under bf16 autocast take about half the fp32 bytes
ALLOCATOR_OVERHEAD = 1.5  # fragmentation, cuDNN/cuBLAS workspaces, augmentation buffers


def _saved_activation_bytes(net: torch.nn.Module, shape: Sequence[int]) -> int:
    seen, total = set(), 0

    def pack(t: torch.Tensor):
        nonlocal total
        key = (t.untyped_storage().data_ptr(), t.dtype)
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.zeros(*shape))
    return total


def estimate_training_memory(size: str, num_input_channels: int, num_classes: int,
                             patch_size: Sequence[int], adapter: str = "hp",
                             slices: Optional[int] = None) -> dict:
    """Bytes per sample (activations) and fixed bytes (weights, gradients, AdamW state) on CUDA.

    ``patch_size`` is the in-plane (H, W) patch; with ``slices`` the memory network
    (``2d_mem``) is measured on runs of that many slices (both directions, memory included).
    """
    cfg = AdapterCfg(kind=adapter)
    if slices is None:
        net = build_network(num_input_channels, num_classes, size=size, adapter=cfg)
    else:
        net = build_memory_network(num_input_channels, num_classes, size=size, adapter=cfg)
    h, w = patch_size
    scale = min(1.0, math.sqrt(REFERENCE_PIXELS / (h * w)))
    ref = [max(32, int(round(d * scale / 32)) * 32) for d in (h, w)]
    depth = () if slices is None else (slices,)
    measured = _saved_activation_bytes(net, (1, num_input_channels, *depth, *ref))
    per_sample = measured * (h * w) / (ref[0] * ref[1]) * BF16_FACTOR * ALLOCATOR_OVERHEAD
    n_all = sum(p.numel() for p in net.parameters())
    n_train = sum(p.numel() for p in net.parameters() if p.requires_grad)
    fixed = 4 * n_all + 12 * n_train  # fp32 weights + gradients + two AdamW moments
    return dict(per_sample_bytes=per_sample, fixed_bytes=float(fixed), reference_patch=ref)
