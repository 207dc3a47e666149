"""Frozen SAM2 weights stored once per model folder, content-addressed.

A training checkpoint holds only what changes (trainable tensors, running statistics) plus a
*reference*: the SHA-256 of the frozen tensors and the name of the file that holds them,
``sam2_frozen_<first 16 hex digits>.pt`` next to the fold folders. Five folds trained from the same
SAM2 checkpoint share one file. Loading a lean state dict (``expand``) finds the file, checks its
hash and merges it in; ``SAM2SegNet.load_state_dict`` does this itself, so nnU-Net's own
predictor works on lean checkpoints unchanged.
"""
import glob
import hashlib
import logging
import os
from typing import Dict, Iterable, List, Optional

import torch
from torch import nn

from nnsam2.utils.safe_torch_load import CheckpointError, read_weights_only
from nnsam2.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

REFERENCE_KEY = "nnsam2_frozen_store"  # entry of a lean state dict: {"sha256", "file", "num_tensors"}
FILE_PREFIX = "sam2_frozen_"
_cache: Dict[str, Dict[str, torch.Tensor]] = {}  # sha256 -> tensors (folds share them)


class FrozenStoreError(CheckpointError):
    """A lean checkpoint whose frozen weights cannot be found or do not match their hash."""


def content_hash(tensors: Dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes, in key order (independent of file format)."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def frozen_keys(net: nn.Module) -> List[str]:
    """State-dict keys that training never changes: frozen parameters, and buffers of modules
    without trainable parameters (a trained BatchNorm's running statistics change)."""
    keys = [name for name, p in net.named_parameters() if not p.requires_grad]
    for module_name, module in net.named_modules():
        if any(p.requires_grad for p in module.parameters(recurse=False)):
            continue
        prefix = f"{module_name}." if module_name else ""
        keys += [prefix + name for name, b in module.named_buffers(recurse=False) if b is not None]
    return keys


def split_state_dict(net: nn.Module, model_folder: str) -> dict:
    """``net``'s state dict with its frozen tensors moved to the store file in ``model_folder``."""
    state = net.state_dict()
    frozen = {k: state.pop(k) for k in frozen_keys(net) if k in state}
    if not frozen:
        return state
    sha = content_hash(frozen)
    name = f"{FILE_PREFIX}{sha[:16]}.pt"
    path = os.path.join(model_folder, name)
    if not os.path.isfile(path):
        with atomic_path(path) as tmp:
            torch.save({"sha256": sha, "tensors": frozen}, tmp)
        logger.info("stored %d frozen tensors once for this model folder: %s", len(frozen), path)
    _cache[sha] = frozen
    state[REFERENCE_KEY] = {"sha256": sha, "file": name, "num_tensors": len(frozen)}
    return state


class FoldDelta(dict):
    """The tensors of one fold that differ from the other folds of an ensemble; the rest is
    already in the network. Loading one (``SAM2SegNet.load_state_dict``) copies only these:
    nnU-Net's predictor loads every fold's weights for every case, and a full state dict would
    copy the frozen SAM2 once per fold and case for nothing."""


def fold_deltas(states: List[Dict[str, torch.Tensor]]) -> List[FoldDelta]:
    """Per fold, the tensors that are not the same in every fold (by value)."""
    first = states[0]
    shared = {k for k, v in first.items()
              if all(k in s and s[k].shape == v.shape and torch.equal(s[k], v) for s in states[1:])}
    return [FoldDelta({k: v for k, v in s.items() if k not in shared}) for s in states]


def is_lean(state: dict) -> bool:
    return REFERENCE_KEY in state


def expand(state: dict, folders: Iterable[str] = ()) -> dict:
    """The full state dict of a lean one (a full one is returned unchanged)."""
    if not is_lean(state):
        return state
    ref = state[REFERENCE_KEY]
    frozen = _cache.get(ref["sha256"]) or _load(ref, list(folders))
    full = {k: v for k, v in state.items() if k != REFERENCE_KEY}
    full.update(frozen)
    return full


def _candidates(name: str, folders: List[str]) -> List[str]:
    paths = [os.path.join(f, name) for f in folders]
    results = os.environ.get("nnUNet_results")
    if results:  # nnU-Net's own commands do not say which model folder they load
        paths += sorted(glob.glob(os.path.join(results, "*", "*", name)))
    return [p for p in paths if os.path.isfile(p)]


def _load(ref: dict, folders: List[str]) -> Dict[str, torch.Tensor]:
    paths = _candidates(ref["file"], folders)
    if not paths:
        raise FrozenStoreError(
            f"the frozen SAM2 weights {ref['file']} of this lean checkpoint were not found "
            f"(searched {folders or []} and $nnUNet_results/*/*/): it lies in the model folder, "
            f"next to plans.json; copy the whole model folder, not only the fold checkpoints")
    for path in paths:
        frozen = _read_verified(path, ref["sha256"])
        if frozen is not None:
            _cache[ref["sha256"]] = frozen
            return frozen
    raise FrozenStoreError(f"{paths[0]} does not hold the frozen weights its checkpoints refer "
                           f"to (SHA-256 mismatch or unreadable): the model folder is damaged")


def _read_verified(path: str, sha: str) -> Optional[Dict[str, torch.Tensor]]:
    try:
        tensors = read_weights_only(path, kind="frozen SAM2 weights")["tensors"]
    except Exception as e:  # damaged file: try the next candidate
        logger.warning("cannot read frozen SAM2 weights %s: %s", path, e)
        return None
    if content_hash(tensors) != sha:
        logger.warning("frozen SAM2 weights %s fail their SHA-256 check", path)
        return None
    return tensors
