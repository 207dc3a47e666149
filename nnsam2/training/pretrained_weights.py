"""``-pretrained_weights``: start from an nnsam2 model trained on another dataset.

Every tensor whose name and shape match is loaded (frozen SAM2, PEGs, adapters, LoRA, stem), except
the class parts when the number of classes differs: the class tokens and their hypernetwork MLPs
are then initialised as a fresh run from an official SAM2 checkpoint would (class k from SAM2's
mask token k mod 4), or stay randomly initialised when no SAM2 checkpoint is given.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from torch import nn

from nnsam2.network.sam2_weights import (CLASS_TOKEN_KEYS, HYPERNET_PREFIX, CheckpointError,
                                       canonical_name, load_sam2_checkpoint)
from nnsam2.training import checkpoint_files

logger = logging.getLogger(__name__)


@dataclass
class FinetuneReport:
    path: str
    source: str = "pretrained nnsam2 model"
    loaded: List[str] = field(default_factory=list)
    class_parts: str = "loaded"
    skipped: Dict[str, str] = field(default_factory=dict)  # source key -> why
    new: List[str] = field(default_factory=list)  # our keys not taken from the source

    def summary(self) -> str:
        return (f"{self.source} {self.path}: {len(self.loaded)} tensors loaded, "
                f"{len(self.skipped)} skipped ({', '.join(sorted(set(self.skipped.values()))) or '-'}), "
                f"{len(self.new)} newly initialised; class tokens and hypernetwork MLPs: "
                f"{self.class_parts}")


def is_class_part(key: str) -> bool:
    key = canonical_name(key)
    return key in CLASS_TOKEN_KEYS or key.startswith(HYPERNET_PREFIX)


def match_state(source: Dict, ours: Dict, same_classes: bool, path: str) -> tuple:
    """(tensors to load, FinetuneReport): a pure mapping by name and shape."""
    report, mapped = FinetuneReport(path=path), {}
    for key, value in source.items():
        if key not in ours:
            report.skipped[key] = "not in this network (other adapter or size)"
        elif is_class_part(key) and not same_classes:
            report.skipped[key] = "class part of another label set"
        elif tuple(value.shape) != tuple(ours[key].shape):
            report.skipped[key] = "shape differs (e.g. input channels)"
        else:
            mapped[key] = value
            report.loaded.append(key)
    if not any(k.startswith("image_encoder.trunk.") for k in mapped):
        raise CheckpointError(f"{path} is not an nnsam2 model of this SAM2 size: none of its "
                              f"tensors fits this network's Hiera trunk")
    report.new = [k for k in ours if k not in mapped]
    return mapped, report


def load_nnsam2_pretrained(net: nn.Module, path: str, sam2_checkpoint: Optional[str] = None,
                           allow_pickle: Optional[bool] = None) -> FinetuneReport:
    """Load ``path`` (an nnsam2 ``checkpoint_*.pth``) into ``net`` as far as it fits."""
    checkpoint, _ = checkpoint_files.read(os.fspath(path), allow_pickle=allow_pickle)
    source = checkpoint["network_weights"]
    tokens = source.get("sam_mask_decoder.mask_tokens.weight")
    same_classes = tokens is not None and tokens.shape[0] == net.num_classes
    if not same_classes and sam2_checkpoint:
        load_sam2_checkpoint(net, sam2_checkpoint)  # class parts as a fresh SAM2 run; rest below
    mapped, report = match_state(source, net.state_dict(), same_classes, os.fspath(path))
    net.load_state_dict(mapped, strict=False)
    if not same_classes:
        report.class_parts = (f"initialised from {sam2_checkpoint} (class k <- SAM2 mask token k mod 4)"
                              if sam2_checkpoint else
                              "randomly initialised (other number of classes; give "
                              "--sam2-checkpoint to start them from SAM2's mask tokens)")
    logger.info(report.summary())
    return report


def load_trained_2d(net: nn.Module, path: str, allow_pickle: Optional[bool] = None) -> FinetuneReport:
    """Start a ``2d_mem`` network from the ``2d`` model of the same fold (same dataset, trainer
    and plans): every tensor of the 2D network loads; the memory path keeps what it had."""
    checkpoint, _ = checkpoint_files.read(os.fspath(path), allow_pickle=allow_pickle)
    mapped, report = match_state(checkpoint["network_weights"], net.state_dict(), True,
                                 os.fspath(path))
    report.source = "2d_mem starts from the trained 2d model"
    if report.skipped:
        raise CheckpointError(f"{path} is not the 2d model of this 2d_mem network: "
                              f"{len(report.skipped)} of its tensors do not fit, e.g. "
                              f"{next(iter(report.skipped.items()))}")
    net.load_state_dict(mapped, strict=False)
    logger.info(report.summary())
    return report
