"""Reading nnU-Net checkpoints without running code that a model folder may carry.

nnU-Net loads its checkpoints with ``torch.load(..., weights_only=False)``: unpickling a file
received from someone else can execute anything. nnsam2 loads them with ``weights_only=True`` and
an allow-list of exactly the non-tensor types nnU-Net checkpoints hold (numpy scalars in the
training log, the ``torch.device`` in ``init_args``); a file holding anything else is refused,
naming the type. ``--allow-pickle`` (``nnSAM2_allow_pickle=1``) loads a trusted legacy file in full.
"""
import os
import pickle
import re
from typing import Optional

import numpy as np
import torch

from nnsam2.network.sam2_weights import CheckpointError

ENV_ALLOW_PICKLE = "nnSAM2_allow_pickle"

_multiarray = (np._core if hasattr(np, "_core") else np.core).multiarray  # numpy 2 / 1
# numpy reconstructs scalars (np.float64 in nnU-Net's logs and EMA) from a dtype + raw bytes.
ALLOWED_GLOBALS = [np.dtype, _multiarray.scalar, np.ndarray, _multiarray._reconstruct,
                   type(np.dtype(np.float64)), type(np.dtype(np.float32)),
                   type(np.dtype(np.int64)), type(np.dtype(np.bool_)), torch.device]


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that holds types nnU-Net checkpoints never hold (possibly code)."""


def pickle_allowed_by_user() -> bool:
    """The user's ``nnSAM2_allow_pickle`` (for nnU-Net's own commands and Python callers)."""
    return os.environ.get(ENV_ALLOW_PICKLE, "").lower() in ("1", "true", "t", "yes")


def load_nnunet_checkpoint(path: str, allow_pickle: Optional[bool] = None) -> dict:
    """An nnU-Net/nnsam2 checkpoint dict, read without executing code unless ``allow_pickle``
    (None: the ``nnSAM2_allow_pickle`` variable decides)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    if pickle_allowed_by_user() if allow_pickle is None else allow_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(_refusal(path, str(e))) from None
    except Exception as e:  # truncated, empty or not a torch file: torch raises many types
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated or not a PyTorch "
                              f"file?): {_first_line(e)}") from None
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise CheckpointError(f"{path} is not an nnU-Net checkpoint (no 'network_weights')")
    return checkpoint


def _refusal(path: str, message: str) -> str:
    found = re.search(r"(?:GLOBAL|global)[: ]+([\w.]+(?: [\w.]+)?)", message)
    what = found.group(1).replace(" ", ".") if found else _first_line(message)
    return (f"refused to load {path}: it holds the type {what}, which nnU-Net checkpoints never "
            f"hold; unpickling it could run code. If you trust the file (e.g. written by an older "
            f"nnU-Net or nnsam2), pass --allow-pickle")


def _first_line(e) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
