"""nnsam2_predict: predict a folder of raw images (any format nnU-Net reads) with a trained model."""
import argparse
import os

import torch

from nnsam2.cli.common import run_cli, show_progress
from nnsam2.nnunet.batched_prediction import ENV_MEMORY_GB, parse_memory_gb
from nnsam2.nnunet.environment import UsageError, dataset_name, require_env, use_nnsam2_trainers
from nnsam2.nnunet.input_check import check_input_folder, check_output_folder
from nnsam2.nnunet.model_lookup import no_model_message
from nnsam2.nnunet.planner import PLANS_NAME
from nnsam2.nnunet.safe_load import ENV_ALLOW_PICKLE


def _env_int(name: str, default: int) -> int:
    """nnU-Net's habit: -npp / -nps default to nnUNet_npp / nnUNet_nps when set."""
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


def _memory_gb(value: str) -> float:
    try:
        return parse_memory_gb(value, "the budget")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _memory_budget_gb(a):
    """--prediction_memory_gb, else nnSAM2_prediction_memory_gb (checked here), else None."""
    if a.prediction_memory_gb is not None or not os.environ.get(ENV_MEMORY_GB):
        return a.prediction_memory_gb
    try:
        return parse_memory_gb(os.environ[ENV_MEMORY_GB], ENV_MEMORY_GB)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _model_folder(a) -> str:
    """-m MODEL_FOLDER (as nnUNetv2_predict_from_modelfolder) or -d/-tr/-p/-c under nnUNet_results."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    if a.m:
        if a.d:
            raise UsageError("give either -m MODEL_FOLDER or -d DATASET (with -tr/-p/-c), not both")
        if not os.path.isfile(os.path.join(a.m, "plans.json")):
            raise UsageError(f"-m {a.m} is not a trained model folder (no plans.json in it)")
        return a.m
    if not a.d:
        raise UsageError("give -d DATASET (with -tr/-p/-c) or -m MODEL_FOLDER")
    require_env("nnUNet_results")
    name = dataset_name(a.d)
    folder = get_output_folder(name, a.tr, a.p, a.c)
    if not os.path.isdir(folder):
        raise UsageError(no_model_message(folder, name, a.d, a.c, a.tr, a.p))
    return folder


def _check_parity_options(a) -> None:
    if a.prev_stage_predictions:
        raise UsageError("-prev_stage_predictions is for nnU-Net's cascade; nnsam2 trains no "
                         "cascade (its configuration 2d needs no previous stage)")
    if not 0 <= a.part_id < a.num_parts:
        raise UsageError(f"-part_id must be in 0..{a.num_parts - 1} for -num_parts {a.num_parts}, "
                         f"got {a.part_id}")


def model_folder_and_folds(a):
    bad = [f for f in a.f if f != "all" and not f.isdigit()]
    if bad:
        raise UsageError(f"-f takes fold numbers or 'all', got {' '.join(bad)}")
    folder = _model_folder(a)
    folds = [f if f == "all" else int(f) for f in a.f]
    missing = [f for f in folds if not os.path.isfile(os.path.join(folder, f"fold_{f}", a.chk))]
    if missing:
        trained = sorted(d[5:] for d in os.listdir(folder)
                         if d.startswith("fold_") and os.path.isfile(os.path.join(folder, d, a.chk)))
        raise UsageError(f"{folder}: no {a.chk} for fold(s) {missing}; pass -f with the "
                         f"trained folds ({' '.join(trained) or 'none yet'})")
    return folder, folds


def predict(a) -> None:
    from nnunetv2.utilities.file_path_utilities import load_json
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnsam2.nnunet.predictor import SAM2Predictor
    use_nnsam2_trainers()
    if a.allow_pickle:
        os.environ[ENV_ALLOW_PICKLE] = "1"
    _check_parity_options(a)
    memory_gb = _memory_budget_gb(a)
    folder, folds = model_folder_and_folds(a)
    plans = PlansManager(os.path.join(folder, "plans.json"))
    dataset_json = load_json(os.path.join(folder, "dataset.json"))
    expect_2d = plans.plans["original_median_shape_after_transp"][0] == 1
    cases = check_input_folder(a.i, dataset_json, plans.image_reader_writer_class, expect_2d)
    check_output_folder(a.o)  # before the model is loaded
    print(f"nnsam2_predict: {len(cases)} case(s) in {a.i}, folds {folds} of {folder}")
    device = torch.device(a.device)
    predictor = SAM2Predictor(tile_step_size=a.step_size, use_gaussian=True,
                              use_mirroring=not a.disable_tta,
                              perform_everything_on_device=not a.not_on_device, device=device,
                              verbose=a.verbose, allow_tqdm=show_progress(a.disable_progress_bar),
                              prediction_memory_gb=memory_gb)
    predictor.initialize_from_trained_model_folder(folder, folds, a.chk)
    predictor.predict_from_files(a.i, a.o, save_probabilities=a.save_probabilities,
                                 overwrite=not a.continue_prediction,
                                 num_processes_preprocessing=a.npp,
                                 num_processes_segmentation_export=a.nps,
                                 num_parts=a.num_parts, part_id=a.part_id)


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
    p.add_argument("--verbose", action="store_true")
    return p


def main(argv=None) -> None:
    a = parser().parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        parser().error("-device cuda requested but no CUDA device is available; use -device cpu")
    run_cli("nnsam2_predict", lambda: predict(a))
