"""nnsam2_train DATASET CONFIGURATION FOLD -tr TRAINER: nnU-Net training of the adapted SAM2."""
import argparse
import multiprocessing
import os

import torch

from nnsam2.cli.common import run_cli, show_progress
from nnsam2.nnunet import init_policy
from nnsam2.nnunet.environment import UsageError, dataset_name, require_env, use_nnsam2_trainers
from nnsam2.nnunet.checkpointing import ENV_RESUME
from nnsam2.nnunet.memory_plan import MEM_CONFIGURATION, MIN_SLICES
from nnsam2.nnunet.planner import PLANS_NAME
from nnsam2.nnunet.trainers import ENV_PROGRESS
from nnsam2.nnunet.safe_load import ENV_ALLOW_PICKLE


def _check_before_start(a) -> None:
    """Fail before nnU-Net creates anything: dataset, plans, trainer, SAM2 initialisation."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.file_path_utilities import load_json
    require_env("nnUNet_preprocessed", "nnUNet_results")
    name = dataset_name(a.dataset)
    plans_file = os.path.join(os.environ["nnUNet_preprocessed"], name, a.p + ".json")
    if not os.path.isfile(plans_file):
        raise UsageError(f"plans {plans_file} not found: run nnsam2_plan_and_preprocess -d {a.dataset}")
    configurations = load_json(plans_file)["configurations"]
    if a.configuration not in configurations:
        why = (f"; {MEM_CONFIGURATION} is planned for 3D datasets only (stacks of at least "
               f"{MIN_SLICES} slices), and {name} is not one" if a.configuration ==
               MEM_CONFIGURATION else "")
        raise UsageError(f"configuration {a.configuration!r} is not in {plans_file} "
                         f"(available: {sorted(configurations)}){why}")
    try:
        trainer = recursive_find_trainer_class_by_name(a.tr)
    except RuntimeError as e:
        raise UsageError(f"unknown trainer {a.tr!r}") from e
    from nnsam2.nnunet.trainers import nnSAM2Trainer
    if not issubclass(trainer, nnSAM2Trainer):
        raise UsageError(f"{a.tr} is not an nnsam2 trainer (use nnUNetv2_train for nnU-Net's own)")
    _check_fold(os.path.dirname(plans_file), a.fold)
    size = configurations[a.configuration].get("sam2", {}).get("size", "tiny")
    resuming = (a.c and _has_checkpoint(name, a)) or a.val
    if resuming:
        _restore_train_all(name, a)
    if a.pretrained_weights:
        _check_pretrained(a)
    if not (resuming or a.pretrained_weights):
        policy = init_policy.resolve_policy(size)  # raises with the fix when none is given
        if policy.mode == "checkpoint":
            _check_checkpoint_fits(policy.checkpoint, size, trainer, plans_file,
                                   memory=a.configuration == MEM_CONFIGURATION)


def _check_pretrained(a) -> None:
    """Refuse before training starts: --c together with it, or a file that is unsafe/unreadable."""
    from nnsam2.nnunet.safe_load import load_nnunet_checkpoint
    if a.c:
        raise UsageError("-pretrained_weights only starts a training; it cannot be combined "
                         "with --c (which continues one)")
    load_nnunet_checkpoint(a.pretrained_weights)


def _check_fold(preprocessed_folder: str, fold: str) -> None:
    """Folds are 0..k-1 of the split in use, or 'all'. nnU-Net itself trains any other number on
    a random 80:20 split, and its 5-fold split fails with a traceback on fewer than 5 cases."""
    from nnunetv2.utilities.file_path_utilities import load_json
    if fold == "all":
        return
    if not fold.isdigit():
        raise UsageError(f"fold must be a number (0-4 for nnU-Net's 5-fold split) or 'all', got {fold!r}")
    splits_file = os.path.join(preprocessed_folder, "splits_final.json")
    if os.path.isfile(splits_file):  # the user's (or nnU-Net's earlier) split
        num_folds = len(load_json(splits_file))
        if int(fold) >= num_folds:
            raise UsageError(f"fold {fold} is not in {splits_file}, which defines {num_folds} "
                             f"fold(s): train fold 0-{num_folds - 1} or 'all'")
        return
    if int(fold) >= 5:  # nnUNetTrainer.do_split hard-codes a 5-fold split
        raise UsageError(f"fold {fold} does not exist: nnU-Net's split has 5 folds (0-4); train "
                         f"one of them or 'all', or write your own split to {splits_file}")
    num_cases = load_json(os.path.join(preprocessed_folder, "dataset.json")).get("numTraining", 0)
    if num_cases < 5:
        raise UsageError(
            f"{os.path.basename(preprocessed_folder)} has {num_cases} training case(s), too few for "
            f"nnU-Net's 5-fold cross-validation: train fold 'all', or write your own split to "
            f"{os.path.join(preprocessed_folder, 'splits_final.json')}")


def _fold_folder(name: str, a) -> str:
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    return os.path.join(get_output_folder(name, a.tr, a.p, a.configuration), f"fold_{a.fold}")


def _has_checkpoint(name: str, a) -> bool:
    """Whether --c has an nnU-Net checkpoint to continue from (else it starts afresh)."""
    return any(os.path.isfile(os.path.join(_fold_folder(name, a), f"checkpoint_{k}.pth"))
               for k in ("final", "latest", "best"))


def _restore_train_all(name: str, a) -> None:
    """A resumed run optimises the same parameters as the run it continues."""
    record = init_policy.load_record(_fold_folder(name, a))
    if record is not None and record.train_all:
        os.environ[init_policy.ENV_TRAIN_ALL] = "1"


def _check_checkpoint_fits(path: str, size: str, trainer, plans_file: str,
                          memory: bool = False) -> None:
    """Map the checkpoint onto the planned network once, so a wrong file fails up front."""
    from nnunetv2.utilities.file_path_utilities import load_json
    from nnsam2.network import build_memory_network, build_network
    from nnsam2.network.checkpoint import read_official_state_dict, remap_sam2_state_dict
    dataset_json = load_json(os.path.join(os.path.dirname(plans_file), "dataset.json"))
    net = (build_memory_network if memory else build_network)(
        len(dataset_json["channel_names"]), 2, size=size, adapter=trainer.adapter_cfg())
    remap_sam2_state_dict(read_official_state_dict(path), net, path)


def train(a) -> None:
    from nnunetv2.run.run_training import run_training
    use_nnsam2_trainers()
    if a.sam2_checkpoint:
        if not os.path.isfile(a.sam2_checkpoint):
            raise FileNotFoundError(f"--sam2-checkpoint {a.sam2_checkpoint} does not exist")
        os.environ[init_policy.ENV_CHECKPOINT] = os.path.abspath(a.sam2_checkpoint)
    for flag, env in ((a.random_init, init_policy.ENV_RANDOM_INIT),
                      (a.train_all, init_policy.ENV_TRAIN_ALL), (a.c, ENV_RESUME),
                      (a.allow_pickle, ENV_ALLOW_PICKLE)):
        if flag:
            os.environ[env] = "1"
    os.environ[ENV_PROGRESS] = "1" if show_progress(a.disable_progress_bar) else "0"
    if a.pretrained_weights:  # loaded by our trainer (nnU-Net's loader cannot map SAM2 models)
        os.environ[init_policy.ENV_PRETRAINED] = os.path.abspath(a.pretrained_weights)
    _check_before_start(a)
    if a.device == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    run_training(a.dataset, a.configuration, a.fold, a.tr, a.p, None, a.num_gpus,
                 a.npz, a.c, a.val, a.disable_checkpointing, a.val_best,
                 device=torch.device(a.device))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_train", description=__doc__)
    p.add_argument("dataset", help="dataset name or id")
    p.add_argument("configuration", help="configuration: 2d, or 2d_mem (3D datasets: runs of "
                                         "slices read by SAM2's memory)")
    p.add_argument("fold", help="fold 0-4 or 'all'")
    p.add_argument("-tr", default="SAM2DualAdapterTrainer", help="trainer class name")
    p.add_argument("-p", default=PLANS_NAME, help=f"plans identifier (default {PLANS_NAME})")
    p.add_argument("--sam2-checkpoint", help="official SAM2/SAM2.1 .pt file of the planned size "
                   f"(or set {init_policy.ENV_CHECKPOINT_DIR} to a folder of them)")
    p.add_argument("--random-init", action="store_true",
                   help="train without pretrained SAM2 weights, on purpose (tests, demos)")
    p.add_argument("--train-all", action="store_true",
                   help="train every parameter, not only adapters/PEG/decoder (random-init demos)")
    p.add_argument("-pretrained_weights",
                   help="checkpoint of an nnsam2 model (any dataset, same SAM2 size) to start from: "
                        "every tensor that fits is loaded, the class parts only for the same labels")
    p.add_argument("--allow-pickle", action="store_true",
                   help="load checkpoints with full unpickling (runs code inside them): only for "
                        "trusted legacy files that the safe loader refuses")
    p.add_argument("-num_gpus", type=int, default=1)
    p.add_argument("--npz", action="store_true", help="save validation probabilities")
    p.add_argument("--c", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--val", action="store_true", help="only run the final validation")
    p.add_argument("--val_best", action="store_true", help="validate with checkpoint_best")
    p.add_argument("--disable_checkpointing", action="store_true")
    p.add_argument("-device", default="cuda", choices=["cuda", "cpu", "mps"])
    p.add_argument("--disable_progress_bar", action="store_true",
                   help="no per-iteration progress bar (it is also off when the output is not a "
                        "terminal)")
    return p


def main(argv=None) -> None:
    a = parser().parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        parser().error("-device cuda requested but no CUDA device is available; use -device cpu")
    run_cli("nnsam2_train", lambda: train(a))
