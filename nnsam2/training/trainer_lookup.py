"""nnsam2's trainers for nnU-Net's lookup by class name (training, inference, nnU-Net's own
commands): the folder ``nnUNet_extTrainer`` must name, and the call that sets it."""
import importlib
import os
import pkgutil
import sys

EXT_TRAINER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainers")
TRAINERS_PACKAGE = "nnsam2.training.trainers"


def use_nnsam2_trainers() -> None:
    """Let nnU-Net's trainer lookup (training and inference) find nnsam2's trainers.

    nnU-Net imports every file of an ``nnUNet_extTrainer`` folder by its bare module name
    (``method_trainers``, ``variants.training_length``). Registering the package's modules under
    those names first makes the lookup return the package's own classes in this process, not
    second copies; processes nnU-Net starts itself (DDP workers) find the copies, which behave
    the same."""
    current = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if EXT_TRAINER_DIR not in current:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([EXT_TRAINER_DIR, *current])
    package = importlib.import_module(TRAINERS_PACKAGE)
    for info in pkgutil.walk_packages(package.__path__, TRAINERS_PACKAGE + "."):
        module = importlib.import_module(info.name)
        sys.modules.setdefault(info.name[len(TRAINERS_PACKAGE) + 1:], module)
