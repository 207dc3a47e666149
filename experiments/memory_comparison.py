"""``2d``, ``2d_mem`` from scratch and ``2d_mem`` started from the trained ``2d`` model on one
dataset, on CPU budgets: per-class Dice on the test set and prediction seconds per volume, side by
side (documentation/memory.md).

    python -m experiments.memory_comparison -d 992 --budget 600 -o documentation/memory.md

The dataset must be planned (``nnsam2_plan_and_preprocess``) with a ``2d_mem`` configuration and
have ``imagesTs``/``labelsTs``. ``2d`` and ``2d_mem`` from scratch are trained with
``SAM2DualAdapterTrainer_CPUBudget`` (and its twin ``..._CPUBudgetScratch``; fold ``all``,
random init, every parameter trained: no SAM2 weights can be downloaded here) for ``--budget``
CPU seconds each, side by side; then ``2d_mem`` starts from the trained ``2d`` model for
``--after_2d_budget`` more (default a quarter of ``--budget``, as the trainers' schedule after
2d). A row whose ``checkpoint_final.pth`` exists is not retrained. All rows predict the test
images with the same settings (``nnsam2_predict``'s predictor, in this process, one volume after
the other) and nnU-Net's evaluation scores them. The markdown table is appended to ``-o``.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import torch

from nnsam2.benchmark.machine import machine_info
from nnsam2.training.trainers.variants.benchmarking import write_cpu_budget
from nnsam2.training.trainer_lookup import use_nnsam2_trainers
from nnsam2.utils.nnunet_env import dataset_name, require_env

TRAINER = "SAM2DualAdapterTrainer_CPUBudget"
PLANS = "nnSAM2Plans"
# row -> (configuration, trainer, extra nnsam2_train flags)
ROWS = {"2d": ("2d", TRAINER, []),
        "2d_mem from scratch": ("2d_mem", TRAINER + "Scratch", ["--from-scratch"]),
        "2d_mem from 2d": ("2d_mem", TRAINER, [])}
FIRST, AFTER_2D = ("2d", "2d_mem from scratch"), ("2d_mem from 2d",)


def model_folder(name: str, row: str) -> str:
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    configuration, trainer, _ = ROWS[row]
    return get_output_folder(name, trainer, PLANS, configuration)


def start_training(dataset: str, name: str, row: str, budget_s: float):
    """The real command, in its own process (CPU time is counted per process); None when the
    row is trained already."""
    fold = os.path.join(model_folder(name, row), "fold_all")
    if os.path.isfile(os.path.join(fold, "checkpoint_final.pth")):
        print(f"{row}: trained model found, not retrained")
        return None
    write_cpu_budget(fold, budget_s)
    configuration, trainer, flags = ROWS[row]
    env = {**os.environ, "nnUNet_n_proc_DA": "0"}
    return subprocess.Popen(["nnsam2_train", dataset, configuration, "all", "-tr", trainer,
                             "-device", "cpu", "--random-init", "--train-all",
                             "--disable_progress_bar", *flags], env=env)


def train_rows(dataset: str, name: str, rows, budgets: Dict[str, float]) -> None:
    """Train ``rows`` side by side and wait for all of them."""
    processes = [start_training(dataset, name, row, budgets[row]) for row in rows]
    for row, process in zip(rows, processes):
        if process is not None and process.wait() != 0:
            raise RuntimeError(f"training {row} failed (exit {process.returncode})")


def predict(name: str, row: str, images: str, out: str, tta: bool) -> float:
    """Seconds per volume (preprocessing, network, export; one process)."""
    from nnsam2.inference.predictor import SAM2Predictor
    predictor = SAM2Predictor(use_mirroring=tta, perform_everything_on_device=False,
                              device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(model_folder(name, row), ["all"])
    cases = sorted({f.rsplit("_", 1)[0] for f in os.listdir(images)})
    start = time.perf_counter()
    predictor.predict_from_files(images, out, save_probabilities=False, overwrite=True,
                                 num_processes_preprocessing=1,
                                 num_processes_segmentation_export=1)
    return (time.perf_counter() - start) / len(cases)


def dice_per_class(name: str, labels_ts: str, pred: str) -> Dict[str, float]:
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder_simple
    labels = json.load(open(os.path.join(os.environ["nnUNet_raw"], name, "dataset.json")))["labels"]
    ids = [v for k, v in labels.items() if k not in ("background", "ignore")]
    summary = os.path.join(pred, "summary.json")
    compute_metrics_on_folder_simple(labels_ts, pred, ids, summary, num_processes=1)
    means = json.load(open(summary))["mean"]
    names = {v: k for k, v in labels.items()}
    return {names[int(k)]: means[k]["Dice"] for k in map(str, ids)}


def total_budget(row: str, budgets: Dict[str, float]) -> float:
    """CPU seconds of the row's training, counting the 2d training it started from."""
    return budgets[row] + (budgets["2d"] if row in AFTER_2D else 0.0)


def markdown(name: str, budgets: Dict[str, float], rows: Dict[str, dict], machine: dict, argv: List[str],
             tta: bool) -> str:
    classes = list(next(iter(rows.values()))["dice"])
    head = ("| configuration | " + " | ".join(classes) + " | mean | s / volume | epochs (of 5 "
            "iterations) | CPU s of training | CPU s with the 2d it started from |")
    lines = [f"### {name}: 2d, 2d_mem from scratch, 2d_mem from 2d", "",
             f"Command: `python -m experiments.memory_comparison {' '.join(argv)}`  ",
             f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, torch "
             f"{torch.__version__}, 1-min load average at the end {machine['loadavg_1min']:.1f}  ",
             f"Test-time mirroring: {'on' if tta else 'off'}; Dice per class on the test set "
             f"(nnU-Net's evaluation, mean over cases).", "", head,
             "|" + "---|" * (len(classes) + 6)]
    for config, row in rows.items():
        dice = [row["dice"][c] for c in classes]
        lines.append(f"| {config} | " + " | ".join(f"{d:.4f}" for d in dice) +
                     f" | {sum(dice) / len(dice):.4f} | {row['seconds']:.1f} | {row['epochs']} | "
                     f"{budgets[config]:.0f} | {total_budget(config, budgets):.0f} |")
    return "\n".join(lines) + "\n"


def epochs_trained(name: str, row: str) -> int:
    folder = os.path.join(model_folder(name, row), "fold_all")
    logs = sorted(f for f in os.listdir(folder) if f.startswith("training_log"))
    text = "".join(open(os.path.join(folder, f)).read() for f in logs)
    return text.count("train_loss")


def run(a, argv: List[str]) -> str:
    require_env("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    use_nnsam2_trainers()
    name = dataset_name(a.d)
    raw = os.path.join(os.environ["nnUNet_raw"], name)
    rows = {}
    budgets = {row: a.budget for row in FIRST}
    budgets.update({row: a.after_2d_budget or a.budget / 4 for row in AFTER_2D})
    train_rows(a.d, name, FIRST, budgets)
    train_rows(a.d, name, AFTER_2D, budgets)
    for row in ROWS:
        out = os.path.join(a.predictions or tempfile.mkdtemp(), row.replace(" ", "_"))
        seconds = predict(name, row, os.path.join(raw, "imagesTs"), out, not a.disable_tta)
        rows[row] = dict(dice=dice_per_class(name, os.path.join(raw, "labelsTs"), out),
                         seconds=seconds, epochs=epochs_trained(name, row))
        print(row, rows[row])
    text = markdown(name, budgets, rows, machine_info("cpu"), argv, not a.disable_tta)
    if a.o:
        with open(a.o, "a") as f:
            f.write("\n" + text)
    return text


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-d", required=True, help="dataset name or id (planned, with imagesTs/labelsTs)")
    p.add_argument("--budget", type=float, required=True,
                   help="training CPU seconds of 2d and of 2d_mem from scratch")
    p.add_argument("--after_2d_budget", type=float,
                   help="training CPU seconds of 2d_mem after 2d (default: a quarter of --budget)")
    p.add_argument("--predictions", help="folder for the test predictions (default: a temporary one)")
    p.add_argument("--disable_tta", action="store_true", help="no test-time mirroring")
    p.add_argument("-o", help="markdown file to append the table to")
    print(run(p.parse_args(argv), argv))


if __name__ == "__main__":
    main()
