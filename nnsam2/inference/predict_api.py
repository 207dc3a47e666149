"""Predict a folder of raw images with a trained nnsam2 model (the API under ``nnsam2_predict``,
as ``nnUNetPredictor.predict_from_files`` under ``nnUNetv2_predict``): inputs, output folder,
model folder and folds checked before the model is loaded."""
import os
from typing import Optional, Sequence, Union

import torch

from nnsam2.experiment_planning.planner import PLANS_NAME
from nnsam2.inference.click_prediction import (case_files, check_clicks_for_cases,
                                               check_model_takes_clicks)
from nnsam2.inference.input_check import check_input_folder
from nnsam2.interactive.click_coordinates import read_clicks_file
from nnsam2.inference.model_lookup import no_model_message
from nnsam2.utils.nnunet_env import UsageError, dataset_name, require_env
from nnsam2.utils.output_paths import check_output_folder

Fold = Union[int, str]


def find_model_folder(dataset: Union[int, str], configuration: str = "2d",
                      trainer: str = "SAM2DualAdapterTrainer", plans: str = PLANS_NAME) -> str:
    """``nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIGURATION``, or a UsageError listing what
    is trained."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    require_env("nnUNet_results")
    name = dataset_name(dataset)
    folder = get_output_folder(name, trainer, plans, configuration)
    if not os.path.isdir(folder):
        raise UsageError(no_model_message(folder, name, dataset, configuration, trainer, plans))
    return folder


def check_model_folder(folder: str) -> str:
    if not os.path.isfile(os.path.join(folder, "plans.json")):
        raise UsageError(f"-m {folder} is not a trained model folder (no plans.json in it)")
    return folder


def check_folds(folder: str, folds: Sequence[Fold], checkpoint: str) -> list:
    """Folds as nnU-Net takes them (numbers, or 'all'), each with ``checkpoint`` trained."""
    bad = [f for f in map(str, folds) if f != "all" and not f.isdigit()]
    if bad:
        raise UsageError(f"-f takes fold numbers or 'all', got {' '.join(bad)}")
    folds = [f if str(f) == "all" else int(f) for f in folds]
    missing = [f for f in folds if not os.path.isfile(os.path.join(folder, f"fold_{f}", checkpoint))]
    if missing:
        raise UsageError(f"{folder}: no {checkpoint} for fold(s) {missing}; "
                         + _what_exists(folder, checkpoint))
    return folds


def _what_exists(folder: str, checkpoint: str) -> str:
    """Advice that can work: the folds holding ``checkpoint``, else the checkpoints that exist."""
    folds = sorted(d for d in os.listdir(folder) if d.startswith("fold_"))
    has = {d: sorted(f for f in os.listdir(os.path.join(folder, d)) if f.endswith(".pth")
                     and f.startswith("checkpoint_")) for d in folds}
    trained = [d[5:] for d in folds if checkpoint in has[d]]
    if trained:
        return f"pass -f with the folds that have it ({' '.join(trained)})"
    others = sorted({f for files in has.values() for f in files})
    if others:
        return (f"no fold has {checkpoint}; the folds hold {', '.join(others)}: pass -chk with "
                f"one of them")
    return "no fold is trained yet (nnsam2_train)"


def check_parts(num_parts: int, part_id: int) -> None:
    if not 0 <= part_id < num_parts:
        raise UsageError(f"-part_id must be in 0..{num_parts - 1} for -num_parts {num_parts}, "
                         f"got {part_id}")


def predict(input_folder: str, output_folder: str, model_folder: str, *,
            folds: Sequence[Fold] = (0, 1, 2, 3, 4), checkpoint: str = "checkpoint_final.pth",
            step_size: float = 0.5, mirroring: bool = True, save_probabilities: bool = False,
            continue_prediction: bool = False, num_processes_preprocessing: int = 3,
            num_processes_export: int = 3, num_parts: int = 1, part_id: int = 0,
            on_device: bool = True, device: str = "cuda",
            prediction_memory_gb: Optional[float] = None, allow_pickle: Optional[bool] = None,
            verbose: bool = False, progress_bar: bool = True,
            clicks: Optional[str] = None) -> None:
    """Predict every case of ``input_folder`` into ``output_folder`` with the folds' ensemble.

    ``prediction_memory_gb``: memory for one forward pass of several patches (None: the
    ``nnSAM2_prediction_memory_gb`` variable, else the device's default; 0: one patch at a time).
    ``allow_pickle``: read trusted legacy checkpoints in full (None: ``nnSAM2_allow_pickle``).
    ``clicks``: a clicks file ({case: [{class, z, y, x}]} in raw-image voxels) for a model
    trained with clicks (:mod:`nnsam2.inference.click_prediction`).
    The others are nnU-Net's predictor arguments.
    """
    from nnunetv2.utilities.file_path_utilities import load_json
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnsam2.inference.predictor import SAM2Predictor
    check_parts(num_parts, part_id)
    folds = check_folds(check_model_folder(model_folder), folds, checkpoint)
    plans = PlansManager(os.path.join(model_folder, "plans.json"))
    dataset_json = load_json(os.path.join(model_folder, "dataset.json"))
    expect_2d = plans.plans["original_median_shape_after_transp"][0] == 1
    cases = check_input_folder(input_folder, dataset_json, plans.image_reader_writer_class,
                               expect_2d)
    case_clicks = read_clicks_file(clicks) if clicks else None
    if case_clicks:
        check_clicks_for_cases(case_clicks, case_files(input_folder, cases, dataset_json),
                               plans.image_reader_writer_class,
                               list(plans.get_label_manager(dataset_json).all_labels), clicks)
    check_output_folder(output_folder, inputs=[input_folder])  # before the model is loaded
    print(f"nnsam2_predict: {len(cases)} case(s) in {input_folder}, folds {folds} of {model_folder}")
    predictor = SAM2Predictor(tile_step_size=step_size, use_gaussian=True, use_mirroring=mirroring,
                              perform_everything_on_device=on_device, device=torch.device(device),
                              verbose=verbose, allow_tqdm=progress_bar,
                              prediction_memory_gb=prediction_memory_gb)
    predictor.allow_pickle = allow_pickle
    predictor.initialize_from_trained_model_folder(model_folder, folds, checkpoint)
    if case_clicks:
        check_model_takes_clicks(predictor.network, model_folder, predictor.trainer_name)
        predictor.clicks = case_clicks
    predictor.predict_from_files(input_folder, output_folder, save_probabilities=save_probabilities,
                                 overwrite=not continue_prediction,
                                 num_processes_preprocessing=num_processes_preprocessing,
                                 num_processes_segmentation_export=num_processes_export,
                                 num_parts=num_parts, part_id=part_id)
