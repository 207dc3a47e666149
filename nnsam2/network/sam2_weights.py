"""Loading official SAM2 / SAM2.1 checkpoints (``{"model": state_dict}``) into SAM2SegNet."""
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List

import torch
from torch import nn

from nnsam2.utils.safe_torch_load import CheckpointError, read_weights_only

logger = logging.getLogger(__name__)

REQUIRED_PREFIX = "image_encoder.trunk."
CLASS_TOKEN_KEYS = ("sam_mask_decoder.mask_tokens.weight",)
HYPERNET_PREFIX = "sam_mask_decoder.output_hypernetworks_mlps."
OFFICIAL_MASK_TOKENS = 4


@dataclass
class LoadReport:
    path: str
    loaded: List[str] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)
    new: Dict[str, int] = field(default_factory=dict)  # our key -> numel, not in the checkpoint

    def ignored_groups(self) -> Dict[str, int]:
        """Ignored checkpoint keys per top-level name (``obj_ptr_proj``, ``memory_encoder``, ...,
        ``sam_mask_decoder.iou_prediction_head``: the decoder's are grouped one level deeper)."""
        return dict(Counter(_group(key) for key in self.ignored))

    def summary(self) -> str:
        groups = ", ".join(f"{name} ({n})" for name, n in self.ignored_groups().items())
        return (f"SAM2 checkpoint {self.path}: {len(self.loaded)} tensors loaded, "
                f"{len(self.ignored)} checkpoint keys ignored (video-only or replaced"
                f"{': ' + groups if groups else ''}), "
                f"{sum(self.new.values()):,} parameters in {len(self.new)} tensors newly initialised")


def _group(key: str) -> str:
    parts = key.split(".")
    depth = 2 if parts[0] in ("sam_mask_decoder", "sam_prompt_encoder", "image_encoder") else 1
    return ".".join(parts[:depth])


def canonical_name(key: str) -> str:
    """Our state-dict key with the wrapper segments removed: the official SAM2 key."""
    return ".".join(part for part in key.split(".") if part != "inner")


def read_official_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The ``model`` state dict of an official SAM2 checkpoint, or a CheckpointError naming the file."""
    if not os.path.exists(path):
        raise CheckpointError(f"SAM2 checkpoint {path} does not exist (expected an official "
                              f"sam2/sam2.1 .pt file such as sam2.1_hiera_tiny.pt)")
    ckpt = read_weights_only(path, kind="SAM2 checkpoint")
    state = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(k.startswith(REQUIRED_PREFIX) for k in state):
        raise CheckpointError(f"{path!r} is not a SAM2 checkpoint: expected a dict with a 'model' "
                              f"state dict holding '{REQUIRED_PREFIX}*' keys")
    return state


def tile_class_parts(state: Dict[str, torch.Tensor], num_classes: int) -> Dict[str, torch.Tensor]:
    """Give each class a pretrained mask token and hypernetwork MLP (class k <- official k mod 4)."""
    out = {k: v for k, v in state.items()
           if not (k in CLASS_TOKEN_KEYS or k.startswith(HYPERNET_PREFIX))}
    for key in CLASS_TOKEN_KEYS:
        if key in state:
            src = state[key]
            out[key] = src[torch.arange(num_classes) % src.shape[0]].clone()
    for key, value in state.items():
        if key.startswith(HYPERNET_PREFIX):
            index, rest = key[len(HYPERNET_PREFIX):].split(".", 1)
            for k in range(int(index), num_classes, OFFICIAL_MASK_TOKENS):
                out[f"{HYPERNET_PREFIX}{k}.{rest}"] = value
    return out


def remap_sam2_state_dict(state: Dict[str, torch.Tensor], model: nn.Module, path: str = "<memory>"):
    """Pure mapping of official keys onto ``model``'s keys, shapes asserted.

    Returns (mapped state dict for ``load_state_dict(strict=False)``, LoadReport).
    """
    ours = model.state_dict()
    by_canonical = {canonical_name(k): k for k in ours}
    state = tile_class_parts(state, getattr(model, "num_classes", OFFICIAL_MASK_TOKENS))
    report, mapped = LoadReport(path=path), {}
    for key, value in state.items():
        target = by_canonical.get(key)
        if target is None:
            report.ignored.append(key)
            continue
        if tuple(value.shape) != tuple(ours[target].shape):
            size = getattr(model, "config", {}).get("size", "?")
            raise CheckpointError(
                f"SAM2 checkpoint {path!r} does not match this model (size {size!r}): {key} has "
                f"shape {tuple(value.shape)}, expected {tuple(ours[target].shape)}. "
                f"Is it a checkpoint of another SAM2 size?")
        mapped[target] = value
        report.loaded.append(key)
    _check_frozen_parts_complete(ours, mapped, path)
    report.new = {k: ours[k].numel() for k in ours if k not in mapped}
    return mapped, report


# SAM2's memory parts (the 2d_mem network's, frozen): official key prefixes.
MEMORY_KEYS = ("memory_attention.", "memory_encoder.", "maskmem_tpos_enc", "no_mem_pos_enc")
# Our keys that must come from the checkpoint (the memory parts exist in the 2d_mem network only).
PRETRAINED_PREFIXES = ("image_encoder.", "sam_prompt_encoder.",
                       "sam_mask_decoder.transformer.") + MEMORY_KEYS


def _check_frozen_parts_complete(ours, mapped, path: str) -> None:
    pretrained = PRETRAINED_PREFIXES
    missing = [k for k in ours if k.startswith(pretrained) and k not in mapped
               and "lora_" not in k and ".adapter." not in k and ".peg." not in k]
    if missing:
        raise CheckpointError(
            f"SAM2 checkpoint {path!r} lacks {len(missing)} tensors this model needs, e.g. "
            f"{missing[:3]}: is it a checkpoint of another (smaller) SAM2 size?")


def load_sam2_checkpoint(model: nn.Module, path: str) -> LoadReport:
    """Load an official SAM2/SAM2.1 ``.pt`` into ``model`` in place and log what happened."""
    state = read_official_state_dict(os.fspath(path))
    mapped, report = remap_sam2_state_dict(state, model, os.fspath(path))
    model.load_state_dict(mapped, strict=False)
    logger.info(report.summary())
    logger.debug("ignored checkpoint keys: %s", report.ignored)
    logger.debug("newly initialised tensors: %s", list(report.new))
    return report
