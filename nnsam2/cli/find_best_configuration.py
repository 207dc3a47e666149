"""nnsam2_find_best_configuration: nnU-Net's model selection, ensembling and postprocessing over
the cross-validation results of nnsam2 trainers (nnSAM2Plans, 2d)."""
import argparse
import os

from nnsam2.cli.common import run_cli
from nnsam2.nnunet.environment import EXT_TRAINER_DIR, dataset_name, require_env, \
    use_nnsam2_trainers
from nnsam2.nnunet.planner import PLANS_NAME


def find_best(a) -> None:
    from nnunetv2.evaluation.find_best_configuration import (
        dumb_trainer_config_plans_to_trained_models_dict, find_best_configuration)
    require_env("nnUNet_preprocessed", "nnUNet_results")
    use_nnsam2_trainers()
    name = dataset_name(a.dataset)
    models = dumb_trainer_config_plans_to_trained_models_dict(a.tr, a.c, a.p)
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
    p.add_argument("-c", nargs="+", default=["2d"], help="configurations")
    p.add_argument("-f", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="folds")
    p.add_argument("-np", type=int, default=4, help="processes")
    p.add_argument("--disable_ensembling", action="store_true")
    p.add_argument("--no_overwrite", action="store_true",
                   help="reuse existing ensemble predictions and evaluations (nnU-Net's flag)")
    return p


def main(argv=None) -> None:
    a = parser().parse_args(argv)
    run_cli("nnsam2_find_best_configuration", lambda: find_best(a))
