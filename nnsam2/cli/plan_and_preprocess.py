"""nnsam2_plan_and_preprocess: nnU-Net fingerprint + SAM2 planner + nnU-Net preprocessing."""
import argparse

from nnsam2.cli.common import run_cli
from nnsam2.utils.progress import show_progress
from nnsam2.experiment_planning.planner import PLANS_NAME
from nnsam2.network.configs import SIZES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_plan_and_preprocess", description=__doc__)
    p.add_argument("-d", nargs="+", required=True, help="dataset ids or names")
    p.add_argument("--sam2-size", default="tiny", choices=list(SIZES),
                   help="SAM2 size recorded in the plans (default: tiny)")
    p.add_argument("--patch-size", nargs=2, type=int, metavar=("H", "W"),
                   help="explicit 2D patch size (rounded up to multiples of 32)")
    p.add_argument("-gpu_memory_target", type=float, default=8.0,
                   help="GPU memory (GB) the batch size is planned for (default: 8)")
    p.add_argument("-c", nargs="+", default=["2d"],
                   help="configurations to preprocess: 2d (default); 2d_mem, planned for 3D "
                        "datasets, reads the 2d data (preprocessing 2d serves both)")
    p.add_argument("-np", nargs="+", type=int, default=[4], help="processes for preprocessing")
    p.add_argument("-npfp", type=int, default=4, help="processes for fingerprint extraction")
    p.add_argument("-overwrite_plans_name", default=PLANS_NAME, help="plans identifier")
    p.add_argument("--verify_dataset_integrity", action="store_true",
                   help="kept for nnU-Net compatibility: file layout, headers and voxels (label "
                        "values, NaN/Inf, label geometry) are always checked")
    p.add_argument("--clean", action="store_true", help="redo the fingerprint and overwrite")
    p.add_argument("--no_pp", action="store_true", help="plan only, do not preprocess")
    p.add_argument("-pl", default="nnSAM2Planner",
                   help="experiment planner: nnSAM2Planner (the only one; others are refused)")
    p.add_argument("-preprocessor_name", default="DefaultPreprocessor",
                   help="nnU-Net preprocessor class recorded in the plans")
    p.add_argument("-overwrite_target_spacing", nargs=3, type=float, metavar=("Z", "Y", "X"),
                   help="target spacing instead of nnU-Net's (the 2d configuration uses Y X)")
    p.add_argument("-fpe", default="DatasetFingerprintExtractor",
                   help="nnU-Net fingerprint extractor class")
    p.add_argument("--no_pbar", action="store_true",
                   help="no progress bars (they are also off when the output is not a terminal)")
    p.add_argument("--verbose", action="store_true")
    return p


def main(argv=None) -> None:
    from nnsam2.experiment_planning.plan_and_preprocess_api import plan_and_preprocess
    args = parser().parse_args(argv)
    run_cli("nnsam2_plan_and_preprocess", lambda: plan_and_preprocess(
        args.d, sam2_size=args.sam2_size, patch_size=args.patch_size, gpu_memory_target=args.gpu_memory_target,
        configurations=args.c, num_processes=args.np, num_processes_fingerprint=args.npfp,
        verify_dataset_integrity=args.verify_dataset_integrity, clean=args.clean, no_pp=args.no_pp,
        plans_name=args.overwrite_plans_name, verbose=args.verbose, planner=args.pl,
        preprocessor_name=args.preprocessor_name, overwrite_target_spacing=args.overwrite_target_spacing,
        fingerprint_extractor=args.fpe, progress_bar=show_progress(args.no_pbar)))
