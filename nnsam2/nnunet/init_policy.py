"""How a training run initialises SAM2: official checkpoint, explicit random init, or nnU-Net
``-pretrained_weights``. The nnsam2 CLIs set these environment variables; they also reach the
worker processes of multi-GPU (DDP) training."""
import json
import os
from dataclasses import asdict, dataclass
from typing import Optional

from nnsam2.network.configs import get_size

ENV_CHECKPOINT = "nnSAM2_checkpoint"  # one official .pt file
ENV_CHECKPOINT_DIR = "nnSAM2_checkpoint_dir"  # folder of official files, picked by size
ENV_RANDOM_INIT = "nnSAM2_random_init"  # "1": train from random weights, on purpose
ENV_TRAIN_ALL = "nnSAM2_train_all"  # "1": every parameter trains (random-init demos)
ENV_PRETRAINED = "nnSAM2_nnunet_pretrained"  # path of an nnsam2 checkpoint (-pretrained_weights)
RECORD_FILE = "sam2_init.json"


class MissingCheckpointError(RuntimeError):
    pass


@dataclass
class InitPolicy:
    mode: str  # "checkpoint" | "random" | "nnunet_pretrained"
    checkpoint: Optional[str] = None  # official SAM2 file (for "nnunet_pretrained": class parts)
    train_all: bool = False
    pretrained: Optional[str] = None  # nnsam2 checkpoint of "nnunet_pretrained"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "t", "yes")


def resolve_train_all() -> bool:
    return _flag(ENV_TRAIN_ALL)


def checkpoint_for_size(size: str) -> Optional[str]:
    """An official checkpoint for ``size`` from ``nnSAM2_checkpoint`` or ``nnSAM2_checkpoint_dir``."""
    if os.environ.get(ENV_CHECKPOINT):
        return os.environ[ENV_CHECKPOINT]
    folder = os.environ.get(ENV_CHECKPOINT_DIR)
    if not folder:
        return None
    for name in get_size(size).checkpoint_names:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise MissingCheckpointError(
        f"{ENV_CHECKPOINT_DIR}={folder} holds none of {get_size(size).checkpoint_names} "
        f"(official SAM2 checkpoints for size {size!r})")


def resolve_policy(size: str) -> InitPolicy:
    """The policy for a fresh training, or MissingCheckpointError with what to do."""
    train_all = resolve_train_all()
    if os.environ.get(ENV_PRETRAINED):
        try:
            sam2 = checkpoint_for_size(size)
        except MissingCheckpointError:
            sam2 = None  # optional here: only the class parts would come from it
        return InitPolicy("nnunet_pretrained", checkpoint=sam2, train_all=train_all,
                          pretrained=os.environ[ENV_PRETRAINED])
    path = checkpoint_for_size(size)
    if path:
        return InitPolicy("checkpoint", checkpoint=path, train_all=train_all)
    if _flag(ENV_RANDOM_INIT):
        return InitPolicy("random", train_all=train_all)
    names = " or ".join(get_size(size).checkpoint_names) or "(no official checkpoint exists)"
    raise MissingCheckpointError(
        f"no SAM2 checkpoint given for size {size!r}: pass --sam2-checkpoint {names} "
        f"(or set {ENV_CHECKPOINT_DIR} to a folder holding it). To train from random weights "
        f"on purpose, pass --random-init.")


def save_record(folder: str, policy: InitPolicy) -> None:
    with open(os.path.join(folder, RECORD_FILE), "w") as f:
        json.dump(asdict(policy), f, indent=2)


def load_record(folder: str) -> Optional[InitPolicy]:
    path = os.path.join(folder, RECORD_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return InitPolicy(**json.load(f))


def describe(policy: InitPolicy) -> str:
    if policy.mode == "checkpoint":
        text = f"SAM2 initialised from the official checkpoint {policy.checkpoint}"
    elif policy.mode == "nnunet_pretrained":
        text = f"network initialised from the nnsam2 model {policy.pretrained} (-pretrained_weights)"
    else:
        text = ("!!! RANDOM INITIALISATION: no pretrained SAM2 weights were loaded. This run shows "
                "that the pipeline works; its accuracy says nothing about pretrained SAM2 !!!")
    if policy.train_all:
        text += " | every parameter of the network trains (--train-all), not only the adapters"
    return text
