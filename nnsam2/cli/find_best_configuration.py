"""nnsam2_find_best_configuration: nnU-Net's model selection, ensembling and postprocessing over
the cross-validation results of nnsam2 trainers (nnSAM2Plans; 2d and, for 3D data, 2d_mem)."""
import argparse

from nnsam2.cli.common import run_cli
from nnsam2.experiment_planning.planner import PLANS_NAME


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
    from nnsam2.evaluation.find_best import find_best
    args = parser().parse_args(argv)
    run_cli("nnsam2_find_best_configuration", lambda: find_best(
        args.dataset, args.tr, args.p, args.c or (), args.f, not args.disable_ensembling,
        args.np, not args.no_overwrite))
