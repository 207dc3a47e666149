"""The demo behind ``nnsam2_demo``: the whole pipeline on a generated dataset, on a CPU, in a few
minutes.

Generates a small 2D NIfTI dataset (organ + lesion), then plans, preprocesses, trains the ``toy``
SAM2 from random weights (every parameter trains: there are no pretrained weights here; every
sample trains prompt-free and with simulated clicks), predicts the held-out cases from raw NIfTI, prints Dice per class,
corrects each case with 3 simulated clicks and writes the model's HTML report.
"""
import os
import time

import numpy as np

DEMO_TRAINER = "SAM2DualAdapterTrainer_Interactive_CPUDemo"  # trained with simulated clicks
DEMO_CLICKS = 3


def _set_paths(output: str) -> dict:
    """The demo keeps to its own nnU-Net folders, whatever the user's env vars say."""
    paths = {v: os.path.abspath(os.path.join(output, v)) for v in
             ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for var, path in paths.items():
        os.makedirs(path, exist_ok=True)
        os.environ[var] = path
    return paths


def _evaluate(paths: dict, name: str, pred_folder: str) -> dict:
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.utilities.file_path_utilities import load_json
    dataset_json = load_json(os.path.join(paths["nnUNet_raw"], name, "dataset.json"))
    foreground = {k: v for k, v in dataset_json["labels"].items() if v > 0 and k != "ignore"}
    result = compute_metrics_on_folder(
        os.path.join(paths["nnUNet_raw"], name, "labelsTs"), pred_folder,
        os.path.join(pred_folder, "summary.json"), SimpleITKIO(), dataset_json["file_ending"],
        list(foreground.values()), num_processes=2, chill=False)
    return {k: float(result["mean"][v]["Dice"]) for k, v in foreground.items()}


def _simulate_clicks(paths: dict, name: str, model: str, device: str) -> dict:
    """The held-out cases corrected with simulated clicks (nnsam2_evaluate_interactive's API)."""
    from nnsam2.interactive.evaluate_api import evaluate_model
    raw = os.path.join(paths["nnUNet_raw"], name)
    output = os.path.join(os.path.dirname(paths["nnUNet_raw"]), "interactive")
    summary, _ = evaluate_model(name, "2d", DEMO_TRAINER, "nnSAM2Plans", [0],
                                "checkpoint_final.pth", DEMO_CLICKS,
                                images=os.path.join(raw, "imagesTs"),
                                references=os.path.join(raw, "labelsTs"), output=output,
                                device=device)
    return summary


def _limit_worker_processes() -> None:
    """nnU-Net defaults to 8 export and 12 augmentation workers: far too many for a laptop CPU.
    Must run before nnunetv2 is imported (it reads these at import time)."""
    workers = str(max(1, min(4, os.cpu_count() or 1)))
    os.environ.setdefault("nnUNet_def_n_proc", workers)
    os.environ.setdefault("nnUNet_n_proc_DA", workers)


def run_demo(output: str = "nnsam2_demo_output", device: str = "cpu", dataset_id: int = 990) -> dict:
    _limit_worker_processes()
    from dataset_conversion.demo_dataset import generate_demo_dataset
    from nnsam2.experiment_planning.plan_and_preprocess_api import plan_and_preprocess
    from nnsam2.inference.predict_api import find_model_folder, predict
    from nnsam2.training.run_training import train
    from nnsam2.utils.progress import show_progress
    from nnsam2.experiment_planning.planner import PLANS_NAME
    from nnsam2.model_report.build import write_report
    start = time.time()
    paths = _set_paths(output)
    banner("1/5 generating the demo dataset")
    folder = generate_demo_dataset(paths["nnUNet_raw"], dataset_id=dataset_id, dim=2, overwrite=True)
    name = os.path.basename(folder)
    banner("2/5 fingerprint, SAM2 planning (toy size), preprocessing")
    plan_and_preprocess([dataset_id], sam2_size="toy", clean=True, num_processes=[2],
                        num_processes_fingerprint=2)
    banner("3/5 training the toy SAM2 from RANDOM weights (no pretrained SAM2 is available "
           "here); every parameter trains")
    train(dataset_id, "2d", 0, trainer=DEMO_TRAINER, device=device, random_init=True,
          train_all=True)
    banner("4/5 predicting the held-out cases from raw NIfTI")
    pred = os.path.join(os.path.abspath(output), "predictions")
    model = find_model_folder(dataset_id, "2d", DEMO_TRAINER, PLANS_NAME)
    predict(os.path.join(folder, "imagesTs"), pred, model, folds=[0], device=device,
            num_processes_preprocessing=1, num_processes_export=1, progress_bar=show_progress())
    banner("5/5 Dice per class on the held-out cases")
    dice = _evaluate(paths, name, pred)
    for label, value in dice.items():
        print(f"  {label:<12} Dice {value:.4f}")
    print(f"  mean foreground Dice {np.mean(list(dice.values())):.4f}")
    summary = _simulate_clicks(paths, name, model, device)
    print(f"  {DEMO_CLICKS} simulated clicks: mean Dice {summary['mean_dice'][0]:.4f} → "
          f"{summary['mean_dice'][-1]:.4f} (each click at the centre of the largest error; "
          f"table in {os.path.join(os.path.abspath(output), 'interactive', 'interactive.md')})")
    report = write_report(model, os.path.join(os.path.abspath(output), "report"))
    print(f"  total time {time.time() - start:.0f} s; everything is under {os.path.abspath(output)}")
    print(f"  model report (open it in a browser): {report}")
    return dice


def banner(text: str) -> None:
    print(f"\n=== nnsam2 demo: {text} ===", flush=True)
