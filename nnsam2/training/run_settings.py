"""A training run's settings: how SAM2 is initialised (official checkpoint, explicit random init,
or nnU-Net ``-pretrained_weights``), which parameters train, and how the run reads its files.

They are decided once, before nnU-Net's training starts (:func:`nnsam2.training.run_training.train`
behind ``nnsam2_train``), and written to ``fold_X/sam2_init.json``; the trainer reads them from
there. A file in the fold folder survives DDP's spawned workers and ``--c`` as ``plans.json``
does, and stays as the record of how the model was made (``nnsam2_report`` shows it).

The only environment variable read here is the user-facing ``nnSAM2_checkpoint_dir`` (a folder
of official checkpoints, picked by the planned size).
"""
import dataclasses
import json
import os
from dataclasses import asdict, dataclass
from typing import Optional

from nnsam2.network.configs import get_size
from nnsam2.utils.atomic import atomic_path

ENV_CHECKPOINT_DIR = "nnSAM2_checkpoint_dir"  # folder of official files, picked by size
RECORD_FILE = "sam2_init.json"


class MissingCheckpointError(RuntimeError):
    pass


@dataclass
class RunSettings:
    mode: str  # "checkpoint" | "random" | "nnunet_pretrained"
    checkpoint: Optional[str] = None  # official SAM2 file (for "nnunet_pretrained": class parts)
    train_all: bool = False  # every parameter trains (random-init demos)
    pretrained: Optional[str] = None  # nnsam2 checkpoint of "nnunet_pretrained"
    resume: bool = False  # --c: a damaged checkpoint falls back to the newest readable one
    allow_pickle: Optional[bool] = None  # --allow-pickle: trusted legacy checkpoints unpickled
    # in full; None: the user's nnSAM2_allow_pickle decides
    progress_bar: Optional[bool] = None  # None: only when stderr is a terminal
    start_from_2d: Optional[str] = None  # 2d_mem: the trained 2d fold's checkpoint it starts from
    gate_open: bool = False  # 2d_mem: the memory gate starts open (SAM2's memory path exactly)


def checkpoint_for_size(size: str, checkpoint: Optional[str] = None) -> Optional[str]:
    """``checkpoint`` if given, else the official file for ``size`` in ``nnSAM2_checkpoint_dir``."""
    if checkpoint:
        if os.path.isdir(checkpoint):
            inside = sorted(f for f in os.listdir(checkpoint) if f.endswith((".pt", ".pth")))
            raise MissingCheckpointError(
                f"--sam2-checkpoint {checkpoint} is a folder: pass the checkpoint file "
                f"({', '.join(inside) + ' are' if inside else 'e.g. sam2.1_hiera_tiny.pt is'} in "
                f"it), or set {ENV_CHECKPOINT_DIR}={checkpoint} and leave --sam2-checkpoint out")
        if not os.path.isfile(checkpoint):
            raise MissingCheckpointError(f"--sam2-checkpoint {checkpoint} does not exist")
        return os.path.abspath(checkpoint)
    folder = os.environ.get(ENV_CHECKPOINT_DIR)
    if not folder:
        return None
    for name in get_size(size).checkpoint_names:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise MissingCheckpointError(
        f"{ENV_CHECKPOINT_DIR}={folder} holds none of {get_size(size).checkpoint_names} "
        f"(official SAM2 checkpoints for size {size!r}): nnsam2_download_checkpoint {size} "
        f"downloads {get_size(size).checkpoint_names[0]} there")


def resolve(size: str, *, checkpoint: Optional[str] = None, random_init: bool = False,
            train_all: bool = False, pretrained: Optional[str] = None, **run) -> RunSettings:
    """The settings of a fresh training, or MissingCheckpointError saying what to do. ``run``:
    the fields that only affect how the run reads files and reports (resume, allow_pickle,
    progress_bar)."""
    if pretrained:
        try:
            sam2 = checkpoint_for_size(size, checkpoint)
        except MissingCheckpointError:
            sam2 = None  # optional here: only the class parts would come from it
        return RunSettings("nnunet_pretrained", checkpoint=sam2, train_all=train_all,
                           pretrained=os.path.abspath(pretrained), **run)
    path = checkpoint_for_size(size, checkpoint)
    if path:
        return RunSettings("checkpoint", checkpoint=path, train_all=train_all, **run)
    if random_init:
        return RunSettings("random", train_all=train_all, **run)
    names = " or ".join(get_size(size).checkpoint_names) or "(no official checkpoint exists)"
    download = (f"; nnsam2_download_checkpoint {size} downloads it"
                if get_size(size).checkpoint_names else "")
    raise MissingCheckpointError(
        f"no SAM2 checkpoint given for size {size!r}: pass --sam2-checkpoint {names} "
        f"(or set {ENV_CHECKPOINT_DIR} to a folder holding it){download}. To train from random "
        f"weights on purpose, pass --random-init.")


def save(folder: str, settings: RunSettings) -> None:
    os.makedirs(folder, exist_ok=True)
    with atomic_path(os.path.join(folder, RECORD_FILE)) as tmp:
        with open(tmp, "w") as f:
            json.dump(asdict(settings), f, indent=2)


def load(folder: str) -> Optional[RunSettings]:
    """The settings written for ``folder`` (a fold folder), or None. Fields written by a newer
    version are ignored, fields an older one did not write take their defaults."""
    path = os.path.join(folder, RECORD_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        values = json.load(f)
    known = {f.name for f in dataclasses.fields(RunSettings)}
    return RunSettings(**{k: v for k, v in values.items() if k in known})


def describe(settings: RunSettings) -> str:
    if settings.mode == "checkpoint":
        text = f"SAM2 initialised from the official checkpoint {settings.checkpoint}"
    elif settings.mode == "nnunet_pretrained":
        text = f"network initialised from the nnsam2 model {settings.pretrained} (-pretrained_weights)"
    else:
        text = ("!!! RANDOM INITIALISATION: no pretrained SAM2 weights were loaded. This run shows "
                "that the pipeline works; its accuracy says nothing about pretrained SAM2 !!!")
    if settings.train_all:
        text += " | every parameter of the network trains (--train-all), not only the adapters"
    if settings.start_from_2d:
        text += f" | 2d_mem starts from the trained 2d model {settings.start_from_2d}"
    if settings.gate_open:
        text += " | memory gate open at the start (--sam2-gate-open: SAM2's memory path)"
    return text
