"""nnsam2_find_best_configuration: nnU-Net's model selection, ensembling and postprocessing over
the cross-validation results of nnsam2 trainers (nnSAM2Plans; 2d and, for 3D data, 2d_mem)."""
import argparse
import os

from nnsam2.cli.common import run_cli
from nnsam2.nnunet.environment import EXT_TRAINER_DIR, dataset_name, require_env, \
    use_nnsam2_trainers
from nnsam2.nnunet.planner import PLANNED_CONFIGURATIONS, PLANS_NAME


def trained_configurations(name: str, trainers, plans) -> list:
    """The planned configurations (``2d``, and ``2d_mem`` for 3D data) trained for every
    trainer and plans given; ``2d`` when none is (nnU-Net then says what is missing)."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    found = []
    for c in PLANNED_CONFIGURATIONS:
        if all(os.path.isdir(get_output_folder(name, t, p, c)) for t in trainers for p in plans):
            found.append(c)
    return found or ["2d"]


def find_best(a) -> None:
    from nnunetv2.evaluation.find_best_configuration import (
        dumb_trainer_config_plans_to_trained_models_dict, find_best_configuration)
    require_env("nnUNet_preprocessed", "nnUNet_results")
    use_nnsam2_trainers()
    name = dataset_name(a.dataset)
    configurations = a.c or trained_configurations(name, a.tr, a.p)
    print(f"comparing {', '.join(configurations)} x {', '.join(a.tr)} ({', '.join(a.p)})")
    models = dumb_trainer_config_plans_to_trained_models_dict(a.tr, configurations, a.p)
    find_best_configuration(name, models, allow_ensembling=not a.disable_ensembling,
                            num_processes=a.np, overwrite=not a.no_overwrite, folds=a.f,
                            strict=True)
    print(f"\nThe instructions above use nnU-Net's own commands; they find nnsam2's trainers when\n"
          f"  export nnUNet_extTrainer={EXT_TRAINER_DIR}\n"
          f"is set. nnsam2_predict takes the same -d/-c/-tr/-p/-f arguments and needs no export.\n"
          f"Instructions file: {os.path.join(os.environ['nnUNet_results'], name)}"
          f"/inference_instructions.txt")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_find_best_configuration", description=__doc__)
    p.add_argument("dataset", help="dataset name or id")
    p.add_argument("-tr", nargs="+", default=["SAM2DualAdapterTrainer"], help="trainers")
    p.add_argument("-p", nargs="+", default=[PLANS_NAME], help="plans identifiers")
    p.add_argument("-c", nargs="+", default=None,
                   help="configurations to compare (default: those of 2d and 2d_mem that are "
                        "trained for every -tr and -p)")
    p.add_argument("-f", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="folds")
    p.add_argument("-np", type=int, default=4, help="processes")
    p.add_argument("--disable_ensembling", action="store_true")
    p.add_argument("--no_overwrite", action="store_true",
                   help="reuse existing ensemble predictions and evaluations (nnU-Net's flag)")
    return p


def main(argv=None) -> None:
    a = parser().parse_args(argv)
    run_cli("nnsam2_find_best_configuration", lambda: find_best(a))
