"""nnsam2_predict: predict a folder of raw images (any format nnU-Net reads) with a trained model."""
import argparse
import os

import torch

from nnsam2.cli.common import run_cli
from nnsam2.utils.progress import show_progress
from nnsam2.inference.batched_prediction import ENV_MEMORY_GB, parse_memory_gb
from nnsam2.experiment_planning.planner import PLANS_NAME
from nnsam2.utils.nnunet_env import UsageError


def _env_int(name: str, default: int) -> int:
    """nnU-Net's habit: -npp / -nps default to nnUNet_npp / nnUNet_nps when set."""
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


def _memory_gb(value: str) -> float:
    try:
        return parse_memory_gb(value, "the budget")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _memory_budget_gb(args):
    """--prediction_memory_gb, else nnSAM2_prediction_memory_gb (checked here), else None."""
    if args.prediction_memory_gb is not None or not os.environ.get(ENV_MEMORY_GB):
        return args.prediction_memory_gb
    try:
        return parse_memory_gb(os.environ[ENV_MEMORY_GB], ENV_MEMORY_GB)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _model_folder(args) -> str:
    """-m MODEL_FOLDER (as nnUNetv2_predict_from_modelfolder) or -d/-tr/-p/-c under nnUNet_results."""
    from nnsam2.inference.predict_api import find_model_folder
    if args.m:
        if args.d:
            raise UsageError("give either -m MODEL_FOLDER or -d DATASET (with -tr/-p/-c), not both")
        return args.m
    if not args.d:
        raise UsageError("give -d DATASET (with -tr/-p/-c) or -m MODEL_FOLDER")
    return find_model_folder(args.d, args.c, args.tr, args.p)


def _check_parity_options(args) -> None:
    if args.prev_stage_predictions:
        raise UsageError("-prev_stage_predictions is for nnU-Net's cascade; nnsam2 trains no "
                         "cascade (its configuration 2d needs no previous stage)")
    from nnsam2.inference.predict_api import check_parts
    check_parts(args.num_parts, args.part_id)


def run(args: argparse.Namespace) -> None:
    from nnsam2.inference.predict_api import predict
    _check_parity_options(args)
    predict(args.i, args.o, _model_folder(args), folds=args.f, checkpoint=args.chk,
            step_size=args.step_size, mirroring=not args.disable_tta,
            save_probabilities=args.save_probabilities,
            continue_prediction=args.continue_prediction, num_processes_preprocessing=args.npp,
            num_processes_export=args.nps, num_parts=args.num_parts, part_id=args.part_id,
            on_device=not args.not_on_device, device=args.device,
            prediction_memory_gb=_memory_budget_gb(args), allow_pickle=args.allow_pickle or None,
            verbose=args.verbose, progress_bar=show_progress(args.disable_progress_bar),
            clicks=args.clicks)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_predict", description=__doc__)
    p.add_argument("-i", required=True, help="input folder (CASE_XXXX.<ending> files)")
    p.add_argument("-o", required=True, help="output folder")
    p.add_argument("-d", help="dataset name or id (or give -m)")
    p.add_argument("-m", help="a trained model folder (TRAINER__PLANS__CONFIG), as "
                              "nnUNetv2_predict_from_modelfolder; replaces -d/-tr/-p/-c")
    p.add_argument("-c", default="2d", help="configuration (default 2d)")
    p.add_argument("-tr", default="SAM2DualAdapterTrainer", help="trainer class name")
    p.add_argument("-p", default=PLANS_NAME, help=f"plans identifier (default {PLANS_NAME})")
    p.add_argument("-f", nargs="+", default=["0", "1", "2", "3", "4"], help="folds to ensemble")
    p.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint file name")
    p.add_argument("-step_size", type=float, default=0.5, help="sliding-window step (fraction)")
    p.add_argument("--disable_tta", action="store_true", help="no mirroring test-time augmentation")
    p.add_argument("--save_probabilities", action="store_true")
    p.add_argument("--continue_prediction", action="store_true", help="skip finished cases")
    p.add_argument("-npp", type=int, default=_env_int("nnUNet_npp", 3),
                   help="processes for preprocessing (default: nnUNet_npp or 3)")
    p.add_argument("-nps", type=int, default=_env_int("nnUNet_nps", 3),
                   help="processes for export (default: nnUNet_nps or 3)")
    p.add_argument("-num_parts", type=int, default=1,
                   help="split the cases into this many parts (one command per part, e.g. per GPU)")
    p.add_argument("-part_id", type=int, default=0, help="which part this command predicts")
    p.add_argument("-prev_stage_predictions",
                   help="refused: nnU-Net's cascade input; nnsam2 has no cascade")
    p.add_argument("--not_on_device", action="store_true",
                   help="keep the sliding-window aggregation in RAM instead of on the device")
    p.add_argument("--disable_progress_bar", action="store_true",
                   help="no progress bar (it is also off when the output is not a terminal)")
    p.add_argument("-device", default="cuda", choices=["cuda", "cpu", "mps"])
    p.add_argument("--prediction_memory_gb", type=_memory_gb, metavar="GB",
                   help=f"memory for one forward pass of several patches (0: one patch and mirror "
                        f"at a time, as nnU-Net); default: {ENV_MEMORY_GB} or 25%% of the GPU "
                        f"(at most half its free memory) or of the available RAM")
    p.add_argument("--allow-pickle", action="store_true",
                   help="load checkpoints with full unpickling (runs code inside them): only for "
                        "trusted legacy model folders that the safe loader refuses")
    p.add_argument("--clicks", metavar="FILE",
                   help="corrections for a model trained with clicks (an _Interactive trainer): "
                        "a JSON file {case: [{\"class\": C, \"z\": Z, \"y\": Y, \"x\": X}]} "
                        "in voxels of the raw image (class 0: background), e.g. the --save_clicks "
                        "file of nnsam2_evaluate_interactive")
    p.add_argument("--verbose", action="store_true")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser().error("-device cuda requested but no CUDA device is available; use -device cpu")
    run_cli("nnsam2_predict", lambda: run(args))
