"""nnU-Net's model selection, ensembling and postprocessing over the cross-validation results of
nnsam2 trainers (the API under ``nnsam2_find_best_configuration``)."""
import os
from typing import Sequence, Union

from nnsam2.experiment_planning.mem_configuration import MEM_CONFIGURATION
from nnsam2.experiment_planning.planner import PLANNED_CONFIGURATIONS, PLANS_NAME
from nnsam2.training import run_settings
from nnsam2.training.trainer_lookup import EXT_TRAINER_DIR, use_nnsam2_trainers
from nnsam2.utils.nnunet_env import dataset_name, require_env


def trained_configurations(name: str, trainers, plans) -> list:
    """The planned configurations (``2d``, and ``2d_mem`` for 3D data) trained for every
    trainer and plans given; ``2d`` when none is (nnU-Net then says what is missing)."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    found = []
    for c in PLANNED_CONFIGURATIONS:
        if all(os.path.isdir(get_output_folder(name, t, p, c)) for t in trainers for p in plans):
            found.append(c)
    return found or ["2d"]


def starting_points(name: str, trainers, plans, configurations, folds) -> list:
    """Where each ``2d_mem`` fold started: a model started from the trained ``2d`` fold is
    another model than one trained from SAM2's weights alone, and the comparison says so."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    lines = []
    for t, p, f in ((t, p, f) for t in trainers for p in plans for f in folds):
        if MEM_CONFIGURATION not in configurations:
            break
        settings = run_settings.load(os.path.join(
            get_output_folder(name, t, p, MEM_CONFIGURATION), f"fold_{f}"))
        if settings is not None:
            start = (f"started from the trained 2d model {settings.start_from_2d}"
                     if settings.start_from_2d else "trained without the 2d model (--from-scratch)")
            lines.append(f"{MEM_CONFIGURATION} fold {f} {start} ({t}, {p})")
    return lines


def find_best(dataset: Union[int, str], trainers: Sequence[str] = ("SAM2DualAdapterTrainer",),
              plans: Sequence[str] = (PLANS_NAME,), configurations: Sequence[str] = (),
              folds: Sequence[int] = (0, 1, 2, 3, 4), ensembling: bool = True,
              num_processes: int = 4, overwrite: bool = True) -> None:
    """nnU-Net's ``find_best_configuration`` over every trainer x plans x configuration given
    (default configurations: those trained for all of them); writes nnU-Net's
    ``inference_instructions.txt``."""
    from nnunetv2.evaluation.find_best_configuration import (
        dumb_trainer_config_plans_to_trained_models_dict, find_best_configuration)
    require_env("nnUNet_preprocessed", "nnUNet_results")
    use_nnsam2_trainers()
    name = dataset_name(dataset)
    configurations = list(configurations) or trained_configurations(name, trainers, plans)
    print(f"comparing {', '.join(configurations)} x {', '.join(trainers)} ({', '.join(plans)})")
    for line in starting_points(name, trainers, plans, configurations, folds):
        print(line)
    models = dumb_trainer_config_plans_to_trained_models_dict(trainers, configurations, plans)
    find_best_configuration(name, models, allow_ensembling=ensembling,
                            num_processes=num_processes, overwrite=overwrite, folds=folds,
                            strict=True)
    print(f"\nThe instructions above use nnU-Net's own commands; they find nnsam2's trainers when\n"
          f"  export nnUNet_extTrainer={EXT_TRAINER_DIR}\n"
          f"is set. nnsam2_predict takes the same -d/-c/-tr/-p/-f arguments and needs no export.\n"
          f"Instructions file: {os.path.join(os.environ['nnUNet_results'], name)}"
          f"/inference_instructions.txt")
