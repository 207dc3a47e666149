"""Training-memory estimate of the adapted SAM2, used by the planner to pick the batch size.

The activation memory is measured, not guessed: forward passes with autograd on, counting the
bytes of every tensor autograd saves for the backward pass (saved_tensors_hooks), at a reference
patch no larger than 256x256, scaled linearly with the pixel count (Hiera attends in windows, the
global blocks use memory-efficient attention). Parameters and buffers are held whatever the
batch, so they are never activations (a frozen linear layer saves its weight for the input
gradient: counted per sample, the weights made the estimate twice too high for tiny at 256x256);
nor is what the forward saves whatever the batch (batch 1 and 2 of a small patch tell it apart),
which is fixed. tests/test_training_footprint.py checks the fp32 figures against the CPU
allocator's peak during real training steps (documentation/methods.md, "Batch size").
"""
import logging
import math
from typing import Optional, Sequence, Tuple

import torch

from nnsam2.network import AdapterCfg, build_memory_network, build_network
from nnsam2.utils.nnunet_env import UsageError

logger = logging.getLogger(__name__)

REFERENCE_PIXELS = 256 * 256
SPLIT_PATCH = (64, 64)  # where batch 1 and batch 2 are compared (cheap)
# Per-sample activations under 16-bit autocast over fp32, measured under CPU bf16 autocast at
# 256x256: 0.53 (large), 0.55 (tiny), 0.66 (toy); 0.58 for tiny's 2d_mem (3 slices of 128x128).
BF16_FACTOR = 0.6
ALLOCATOR_OVERHEAD = 1.5  # CUDA: fragmentation, cuDNN/cuBLAS workspaces (not measurable on CPU)
# Autocast casts every weight in every forward pass and saves the bf16 copy for the input
# gradient, whatever the batch (measured under CPU bf16 autocast: 67.1 MB for tiny's 33.8 M).
AUTOCAST_COPY_BYTES = 2
MIN_BATCH = 2  # nnU-Net's minimum: a batch of 1 never gets its forced foreground patch (33%)
ADVICE = "use a smaller --sam2-size, a smaller --patch-size or a larger -gpu_memory_target"


def saved_activation_bytes(net: torch.nn.Module, shape: Sequence[int]) -> int:
    """Bytes of the storages autograd saves in one forward pass of ``net`` on zeros of ``shape``,
    without those of parameters and buffers (held anyway)."""
    held = {t.untyped_storage().data_ptr() for t in (*net.parameters(), *net.buffers())}
    seen, total = set(), 0

    def pack(t: torch.Tensor):
        nonlocal total
        storage = t.untyped_storage()
        if storage.data_ptr() not in held and storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.zeros(*shape))
    return total


def activation_split(net: torch.nn.Module, sample_shape: Sequence[int]) -> Tuple[int, int]:
    """(bytes per sample, bytes whatever the batch) saved for samples of ``sample_shape``
    (C, [D,] H, W). Batch 2 minus batch 1 of a small patch gives what batch 1 holds beyond one
    sample (copies derived from weights, the same at any patch), so the expensive pass at
    ``sample_shape`` runs once."""
    small = (*sample_shape[:-2], *SPLIT_PATCH)
    one = saved_activation_bytes(net, (1, *small))
    shared = max(0, 2 * one - saved_activation_bytes(net, (2, *small)))
    if tuple(sample_shape) != small:
        one = saved_activation_bytes(net, (1, *sample_shape))
    return one - shared, shared


def estimate_training_memory(size: str, num_input_channels: int, num_classes: int,
                             patch_size: Sequence[int], adapter: str = "hp",
                             slices: Optional[int] = None) -> dict:
    """Bytes of a training step on CUDA (16-bit autocast): ``per_sample_bytes`` (activations) and
    ``fixed_bytes`` (weights, gradients, AdamW state, autocast's weight copies); ``fp32_*``: the
    same without autocast and allocator overhead (what the CPU test measures).

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
    per_sample, shared = activation_split(net, (num_input_channels, *depth, *ref))
    fp32_per_sample = per_sample * (h * w) / (ref[0] * ref[1])
    n_all = sum(p.numel() for p in net.parameters())
    n_train = sum(p.numel() for p in net.parameters() if p.requires_grad)
    fp32_fixed = 4 * n_all + 12 * n_train + shared  # trainable: gradient + two AdamW moments
    return dict(per_sample_bytes=fp32_per_sample * BF16_FACTOR * ALLOCATOR_OVERHEAD,
                fixed_bytes=float(fp32_fixed + AUTOCAST_COPY_BYTES * n_all),
                fp32_per_sample_bytes=float(fp32_per_sample), fp32_fixed_bytes=float(fp32_fixed),
                reference_patch=ref)


def batch_that_fits(mem: dict, gpu_memory_target_gb: float) -> int:
    """The largest batch whose estimate fits the target (0: not even one sample)."""
    budget = gpu_memory_target_gb * 1e9 - mem["fixed_bytes"]
    return max(0, int(budget // mem["per_sample_bytes"]))


def _needs(mem: dict, batch: int, gpu_memory_target_gb: float) -> str:
    total = mem["fixed_bytes"] + batch * mem["per_sample_bytes"]
    return (f"{'one sample' if batch == 1 else f'batch {batch}'} needs about {total / 1e9:.3g} GB "
            f"of GPU memory ({mem['fixed_bytes'] / 1e9:.3g} GB fixed + "
            f"{mem['per_sample_bytes'] / 1e9:.3g} GB per sample), more than the "
            f"{gpu_memory_target_gb:g} GB target")


def plan_batch_size(mem: dict, gpu_memory_target_gb: float, cap: int, what: str, *,
                    refuse: bool = True) -> Tuple[int, Optional[str]]:
    """(batch, warning or None): as many samples as fit the target, at most ``cap`` (nnU-Net's 5%
    of the dataset), at least :data:`MIN_BATCH`. When MIN_BATCH does not fit, the batch is
    planned anyway (the target may be another machine's GPU) with a warning that says so; with
    ``refuse``, not even one sample fitting is a UsageError. ``what`` names the plan."""
    fits = batch_that_fits(mem, gpu_memory_target_gb)
    if fits < 1 and refuse:
        raise UsageError(f"{what}: {_needs(mem, 1, gpu_memory_target_gb)}; {ADVICE}")
    batch = max(MIN_BATCH, min(fits, cap))
    if fits >= MIN_BATCH:
        return batch, None
    warning = (f"{what}: {_needs(mem, MIN_BATCH, gpu_memory_target_gb)}; batch {MIN_BATCH} "
               f"(nnU-Net's minimum) planned anyway, training may run out of GPU memory: {ADVICE}")
    logger.warning(warning)
    return batch, warning
