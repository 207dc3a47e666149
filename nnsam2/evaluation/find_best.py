"""nnU-Net's model selection, ensembling and postprocessing over the cross-validation results of
nnsam2 trainers (the API under ``nnsam2_find_best_configuration``)."""
import contextlib
import io
import os
from typing import Sequence, Union

from nnsam2.experiment_planning.mem_configuration import MEM_CONFIGURATION
from nnsam2.experiment_planning.planner import PLANNED_CONFIGURATIONS, PLANS_NAME
from nnsam2.training import run_settings
from nnsam2.training.trainer_lookup import EXT_TRAINER_DIR, use_nnsam2_trainers
from nnsam2.utils.nnunet_env import UsageError, dataset_name, require_env


def trained_configurations(name: str, trainers, plans) -> list:
    """The planned configurations (``2d``, and ``2d_mem`` for 3D data) trained for every
    trainer and plans given; ``2d`` when none is (nnU-Net then says what is missing)."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    found = []
    for c in PLANNED_CONFIGURATIONS:
        if all(os.path.isdir(get_output_folder(name, t, p, c)) for t in trainers for p in plans):
            found.append(c)
    return found or ["2d"]


def check_trainers(name: str, trainers) -> None:
    """Each trainer name must be a class nnU-Net's lookup finds (nnsam2's trainers included)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    for t in trainers:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net narrates its search
                recursive_find_trainer_class_by_name(t)
        except RuntimeError:
            raise UsageError(f"unknown trainer {t!r}: no nnsam2 or nnU-Net trainer class has that "
                             f"name; trained for {name}: {_trained_models(name)}") from None


def _trained_models(name: str) -> str:
    folder = os.path.join(os.environ["nnUNet_results"], name)
    found = sorted(d for d in os.listdir(folder) if "__" in d) if os.path.isdir(folder) else []
    return ", ".join(found) or "nothing yet"


def check_validated_folds(name: str, trainers, plans, configurations, folds) -> None:
    """Every requested fold of every model needs its validation results
    (``fold_X/validation/summary.json``, written at the end of training), as nnU-Net's
    find_best_configuration reads them."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    for t, p, c in ((t, p, c) for t in trainers for p in plans for c in configurations):
        folder = get_output_folder(name, t, p, c)
        done = sorted(d[5:] for d in (os.listdir(folder) if os.path.isdir(folder) else [])
                      if d.startswith("fold_") and os.path.isfile(
                          os.path.join(folder, d, "validation", "summary.json")))
        missing = [f for f in folds if str(f) not in done]
        if missing:
            raise UsageError(
                f"{os.path.basename(folder)} of {name} has no validation results for fold(s) "
                f"{' '.join(map(str, missing))} (validated: {' '.join(done) or 'none'}; "
                f"trained models: {_trained_models(name)}); train them with nnsam2_train {name} "
                f"{c} FOLD -tr {t} -p {p}, or pass -f with the validated folds")


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
    check_trainers(name, trainers)
    configurations = list(configurations) or trained_configurations(name, trainers, plans)
    check_validated_folds(name, trainers, plans, configurations, folds)
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
