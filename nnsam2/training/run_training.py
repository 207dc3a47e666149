"""Train one fold of an nnsam2 model (the API under ``nnsam2_train``, as nnU-Net's
``run_training()`` under ``nnUNetv2_train``).

Everything a user can get wrong is checked before nnU-Net creates anything; the run's settings
are then written to ``fold_X/sam2_init.json`` (:mod:`nnsam2.training.run_settings`) and nnU-Net's
own ``run_training`` trains, its trainer reading them from there. From that write to the end the
fold folder is locked (:mod:`nnsam2.training.fold_lock`): one training per fold at a time.
"""
import dataclasses
import multiprocessing
import os
from typing import Optional, Union

import torch

from nnsam2.experiment_planning.mem_configuration import MEM_CONFIGURATION, MIN_SLICES
from nnsam2.experiment_planning.planner import PLANS_NAME
from nnsam2.training import fold_lock, run_settings
from nnsam2.training.checkpoint_files import CHECKPOINT_NAMES
from nnsam2.training.trainer_lookup import use_nnsam2_trainers
from nnsam2.utils.nnunet_env import UsageError, dataset_name, require_env


@dataclasses.dataclass
class _Run:
    """What the checks found out about the requested run."""
    name: str
    plans_file: str
    fold_folder: str
    size: str
    trainer_class: type
    resuming: bool


def train(dataset: Union[int, str], configuration: str, fold: Union[int, str], *,
          trainer: str = "SAM2DualAdapterTrainer", plans: str = PLANS_NAME,
          sam2_checkpoint: Optional[str] = None, random_init: bool = False,
          train_all: bool = False, pretrained_weights: Optional[str] = None,
          allow_pickle: bool = False, num_gpus: int = 1, npz: bool = False,
          continue_training: bool = False, only_validation: bool = False,
          validate_best: bool = False, disable_checkpointing: bool = False,
          device: str = "cuda", progress_bar: Optional[bool] = None, from_scratch: bool = False,
          gate_open: bool = False) -> str:
    """Train (or continue, or only validate) one fold; returns the fold folder.

    Args:
        dataset, configuration, fold, trainer, plans: as ``nnsam2_train D C F -tr T -p P``.
        sam2_checkpoint: official SAM2/SAM2.1 file of the planned size (else the one in
            ``nnSAM2_checkpoint_dir``); random_init: train without one, on purpose.
        train_all: every parameter trains (random-init demos), not only adapters/PEGs/heads.
        pretrained_weights: an nnsam2 checkpoint to start from (nnU-Net's -pretrained_weights).
        allow_pickle: read trusted legacy checkpoints with full unpickling.
        progress_bar: per-iteration bar; None: only when stderr is a terminal.
        from_scratch: ``2d_mem`` only: do not start from the trained ``2d`` model of the fold.
        gate_open: ``2d_mem`` only: the memory gate starts open (SAM2's memory path exactly).
        The others are nnU-Net's run_training arguments.
    """
    from nnunetv2.run.run_training import run_training
    use_nnsam2_trainers()
    fold = str(fold)
    run = _check_before_start(dataset, configuration, fold, trainer, plans, continue_training,
                              only_validation, pretrained_weights, allow_pickle)
    _check_memory_flags(configuration, from_scratch, gate_open)
    fold_lock.check_free(run.fold_folder)  # fail fast; the lock itself is taken below
    execution = dict(resume=continue_training, allow_pickle=allow_pickle or None,
                     progress_bar=progress_bar)
    previous = run_settings.load(run.fold_folder) if run.resuming else None
    if previous is not None:  # a continued run trains what the run it continues trained
        settings = dataclasses.replace(previous, **execution)
    else:
        start_from_2d = None
        if configuration == MEM_CONFIGURATION and not (from_scratch or pretrained_weights):
            start_from_2d = _trained_2d_checkpoint(run, dataset, fold, trainer, plans)
        settings = _resolve_settings(run, start_from_2d, checkpoint=sam2_checkpoint,
                                     random_init=random_init, train_all=train_all,
                                     pretrained=pretrained_weights, **execution)
        settings = dataclasses.replace(settings, start_from_2d=start_from_2d, gate_open=gate_open)
        if settings.mode == "checkpoint":
            _check_checkpoint_fits(settings.checkpoint, run, configuration)
        if start_from_2d:
            print(f"2d_mem fold {fold} starts from the trained 2d model {start_from_2d} "
                  f"(--from-scratch trains it from SAM2's weights alone)")
    with fold_lock.held(run.fold_folder):  # DDP workers are spawned inside; only we lock
        fold_lock.remove_leftovers(run.fold_folder)
        run_settings.save(run.fold_folder, settings)
        set_threads(device)
        run_training(str(dataset), configuration, fold, trainer, plans, None, num_gpus, npz,
                     continue_training, only_validation, disable_checkpointing, validate_best,
                     device=torch.device(device))
    return run.fold_folder


def _check_before_start(dataset, configuration: str, fold: str, trainer: str, plans: str,
                        continue_training: bool, only_validation: bool,
                        pretrained_weights: Optional[str], allow_pickle: bool) -> _Run:
    """Fail before nnU-Net creates anything: dataset, plans, trainer, fold, pretrained file."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder, load_json
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnsam2.training.trainers.nnsam2_trainer import nnSAM2Trainer
    require_env("nnUNet_preprocessed", "nnUNet_results")
    name = dataset_name(dataset)
    plans_file = os.path.join(os.environ["nnUNet_preprocessed"], name, plans + ".json")
    if not os.path.isfile(plans_file):
        raise UsageError(f"plans {plans_file} not found: run nnsam2_plan_and_preprocess -d {dataset}")
    configurations = load_json(plans_file)["configurations"]
    if configuration not in configurations:
        why = (f"; {MEM_CONFIGURATION} is planned for 3D datasets only (stacks of at least "
               f"{MIN_SLICES} slices), and {name} is not one"
               if configuration == MEM_CONFIGURATION else "")
        raise UsageError(f"configuration {configuration!r} is not in {plans_file} "
                         f"(available: {sorted(configurations)}){why}")
    try:
        trainer_class = recursive_find_trainer_class_by_name(trainer)
    except RuntimeError as e:
        raise UsageError(f"unknown trainer {trainer!r}") from e
    if not issubclass(trainer_class, nnSAM2Trainer):
        raise UsageError(f"{trainer} is not an nnsam2 trainer (use nnUNetv2_train for nnU-Net's own)")
    check_fold(os.path.dirname(plans_file), fold)
    fold_folder = os.path.join(get_output_folder(name, trainer, plans, configuration), f"fold_{fold}")
    if pretrained_weights:
        _check_pretrained(pretrained_weights, continue_training, allow_pickle)
    resuming = (continue_training and _has_checkpoint(fold_folder)) or only_validation
    size = configurations[configuration].get("sam2", {}).get("size", "tiny")
    return _Run(name, plans_file, fold_folder, size, trainer_class, resuming)


def set_threads(device: str) -> None:
    """As nnUNetv2_train: every core on the CPU; on a GPU one thread (the data augmentation
    workers are separate processes, and more threads only compete with them)."""
    if device == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    elif device == "cuda":
        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only possible before any inter-op parallel work
            pass


def _check_memory_flags(configuration: str, from_scratch: bool, gate_open: bool) -> None:
    if configuration != MEM_CONFIGURATION and (from_scratch or gate_open):
        flag = "--from-scratch" if from_scratch else "--sam2-gate-open"
        raise UsageError(f"{flag} only applies to the {MEM_CONFIGURATION} configuration")


def _trained_2d_checkpoint(run: _Run, dataset, fold: str, trainer: str, plans: str) -> str:
    """The ``2d`` fold's final checkpoint that ``2d_mem`` starts from (as nnU-Net's cascade
    starts from ``3d_lowres``), or a UsageError saying what to do."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    path = os.path.join(get_output_folder(run.name, trainer, plans, "2d"), f"fold_{fold}",
                        "checkpoint_final.pth")
    if not os.path.isfile(path):
        raise UsageError(
            f"{MEM_CONFIGURATION} starts from the trained 2d model of fold {fold}, and {path} "
            f"does not exist: train it first (nnsam2_train {dataset} 2d {fold} -tr {trainer}), "
            f"or pass --from-scratch to train {MEM_CONFIGURATION} without it")
    return path


def _resolve_settings(run: _Run, start_from_2d: Optional[str], **flags) -> run_settings.RunSettings:
    """The run's settings from the flags; a 2d_mem run started from 2d without flags takes the
    SAM2 initialisation its 2d run had (the memory path then comes from the same source)."""
    try:
        return run_settings.resolve(run.size, **flags)
    except run_settings.MissingCheckpointError:
        previous = start_from_2d and run_settings.load(os.path.dirname(start_from_2d))
        if not previous or previous.mode == "nnunet_pretrained":
            raise
        print(f"SAM2 initialisation as in the 2d run: {run_settings.describe(previous)}")
        return dataclasses.replace(previous, train_all=previous.train_all or flags["train_all"],
                                   resume=flags["resume"],
                                   allow_pickle=flags["allow_pickle"],
                                   progress_bar=flags["progress_bar"])


def _check_pretrained(path: str, continue_training: bool, allow_pickle: bool) -> None:
    """Refuse before training starts: --c together with it, or a file that is unsafe/unreadable."""
    from nnsam2.utils.safe_torch_load import load_nnunet_checkpoint
    if continue_training:
        raise UsageError("-pretrained_weights only starts a training; it cannot be combined "
                         "with --c (which continues one)")
    load_nnunet_checkpoint(path, allow_pickle or None)


def check_fold(preprocessed_folder: str, fold: str) -> None:
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
            f"{splits_file}")


def _has_checkpoint(fold_folder: str) -> bool:
    """Whether --c has an nnU-Net checkpoint to continue from (else it starts afresh)."""
    return any(os.path.isfile(os.path.join(fold_folder, name)) for name in CHECKPOINT_NAMES)


def _check_checkpoint_fits(path: str, run: _Run, configuration: str) -> None:
    """Map the checkpoint onto the planned network once, so a wrong file fails up front."""
    from nnunetv2.utilities.file_path_utilities import load_json
    from nnsam2.network import build_memory_network, build_network
    from nnsam2.network.sam2_weights import read_official_state_dict, remap_sam2_state_dict
    dataset_json = load_json(os.path.join(os.path.dirname(run.plans_file), "dataset.json"))
    builder = build_memory_network if configuration == MEM_CONFIGURATION else build_network
    net = builder(len(dataset_json["channel_names"]), 2, size=run.size,
                  adapter=run.trainer_class.adapter_cfg())
    remap_sam2_state_dict(read_official_state_dict(path), net, path)
