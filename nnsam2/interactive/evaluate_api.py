"""The API under ``nnsam2_evaluate_interactive``: find the model and the cases, check them, load
the model, simulate the clicks (:mod:`nnsam2.interactive.evaluate`)."""
import os
from typing import Optional, Sequence, Tuple

import torch

from nnsam2.utils.nnunet_env import UsageError, dataset_name


def evaluate_model(dataset, configuration: str, trainer: str, plans: str, folds: Sequence[str],
                   checkpoint: str, num_clicks: int, images: Optional[str] = None,
                   references: Optional[str] = None, output: Optional[str] = None,
                   save_clicks: Optional[str] = None, device: str = "cuda",
                   mirroring: bool = True) -> Tuple[dict, str]:
    """Returns (summary, output folder)."""
    from nnunetv2.utilities.file_path_utilities import load_json
    from nnsam2.inference.click_prediction import check_model_takes_clicks
    from nnsam2.inference.predict_api import check_folds, find_model_folder
    from nnsam2.inference.predictor import SAM2Predictor
    from nnsam2.interactive.cases import folder_cases, validation_cases
    from nnsam2.interactive.evaluate import evaluate_interactive
    from nnsam2.utils.output_paths import check_output_file, check_output_folder
    if num_clicks < 1:
        raise UsageError(f"--clicks must be at least 1, got {num_clicks}")
    if (images is None) != (references is None):
        raise UsageError("give test images with both -i and -ref, or neither (validation cases)")
    model = find_model_folder(dataset, configuration, trainer, plans)
    folds = check_folds(model, folds, checkpoint)
    dataset_json = load_json(os.path.join(model, "dataset.json"))
    if images is None:
        if len(folds) != 1:
            raise UsageError(f"validation cases belong to one fold, got -f {folds}: give one fold, "
                             f"or a test folder with -i and -ref")
        cases = validation_cases(dataset_name(dataset), folds[0], dataset_json)
        output = output or os.path.join(model, f"fold_{folds[0]}", "interactive")
    else:
        cases = folder_cases(images, references, dataset_json)
        if output is None:
            raise UsageError("-o is required with -i (where to write the results)")
    check_output_folder(output, inputs=[p for p in (images, references) if p])
    if save_clicks:
        check_output_file(save_clicks, option="--save_clicks")
    predictor = SAM2Predictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                              perform_everything_on_device=True, device=torch.device(device),
                              allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(model, folds, checkpoint)
    check_model_takes_clicks(predictor.network, model, predictor.trainer_name)
    names = {int(v): k for k, v in dataset_json["labels"].items()
             if k != "ignore" and int(v) > 0}
    print(f"nnsam2_evaluate_interactive: {len(cases)} case(s), {num_clicks} simulated click(s) "
          f"each, folds {folds} of {model}")
    summary = evaluate_interactive(predictor, cases, num_clicks, output, names, save_clicks)
    return summary, output
