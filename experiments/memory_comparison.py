"""``2d`` vs ``2d_mem`` on one dataset, the same CPU budget: per-class Dice on the test set and
prediction seconds per volume, side by side (documentation/memory.md).

    python -m experiments.memory_comparison -d 992 --budget 600 -o documentation/memory.md

The dataset must be planned (``nnsam2_plan_and_preprocess``) with a ``2d_mem`` configuration and
have ``imagesTs``/``labelsTs``. Each configuration is trained with
``SAM2DualAdapterTrainer_CPUBudget`` (fold ``all``, random init, every parameter trained:
no SAM2 weights can be downloaded here) for ``--budget`` CPU seconds, unless its
``checkpoint_final.pth`` exists; then both predict the test images with the same settings
(``nnsam2_predict``'s predictor, in this process, one volume after the other) and nnU-Net's
evaluation scores them. The markdown table is appended to ``-o``.
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
CONFIGURATIONS = ("2d", "2d_mem")


def model_folder(name: str, configuration: str) -> str:
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    return get_output_folder(name, TRAINER, PLANS, configuration)


def train(dataset: str, name: str, configuration: str, budget_s: float) -> None:
    """The real command, in its own process (CPU time is counted per process)."""
    if os.path.isfile(os.path.join(model_folder(name, configuration), "fold_all",
                                   "checkpoint_final.pth")):
        print(f"{configuration}: trained model found, not retrained")
        return
    write_cpu_budget(os.path.join(model_folder(name, configuration), "fold_all"), budget_s)
    env = {**os.environ, "nnUNet_n_proc_DA": "0"}
    subprocess.run(["nnsam2_train", dataset, configuration, "all", "-tr", TRAINER, "-device",
                    "cpu", "--random-init", "--train-all", "--disable_progress_bar"],
                   env=env, check=True)


def predict(name: str, configuration: str, images: str, out: str, tta: bool) -> float:
    """Seconds per volume (preprocessing, network, export; one process)."""
    from nnsam2.inference.predictor import SAM2Predictor
    predictor = SAM2Predictor(use_mirroring=tta, perform_everything_on_device=False,
                              device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(model_folder(name, configuration), ["all"])
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


def markdown(name: str, budgets: Dict[str, float], rows: Dict[str, dict], machine: dict, argv: List[str],
             tta: bool) -> str:
    classes = list(next(iter(rows.values()))["dice"])
    head = ("| configuration | " + " | ".join(classes) +
            " | mean | s / volume | epochs (of 5 iterations) |")
    spent = ", ".join(f"{c} {b:.0f}" for c, b in budgets.items())
    same = len(set(budgets.values())) == 1
    title = (f"{next(iter(budgets.values())):.0f} CPU seconds of training each" if same
             else f"CPU seconds of training: {spent}")
    lines = [f"### {name}: 2d vs 2d_mem, {title}", "",
             f"Command: `python -m experiments.memory_comparison {' '.join(argv)}`  ",
             f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, torch "
             f"{torch.__version__}, 1-min load average at the end {machine['loadavg_1min']:.1f}  ",
             f"Test-time mirroring: {'on' if tta else 'off'}; Dice per class on the test set "
             f"(nnU-Net's evaluation, mean over cases).", "", head,
             "|" + "---|" * (len(classes) + 4)]
    for config, row in rows.items():
        dice = [row["dice"][c] for c in classes]
        lines.append(f"| {config} | " + " | ".join(f"{d:.4f}" for d in dice) +
                     f" | {sum(dice) / len(dice):.4f} | {row['seconds']:.1f} | {row['epochs']} |")
    return "\n".join(lines) + "\n"


def epochs_trained(name: str, configuration: str) -> int:
    folder = os.path.join(model_folder(name, configuration), "fold_all")
    logs = sorted(f for f in os.listdir(folder) if f.startswith("training_log"))
    text = "".join(open(os.path.join(folder, f)).read() for f in logs)
    return text.count("train_loss")


def run(a, argv: List[str]) -> str:
    require_env("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    use_nnsam2_trainers()
    name = dataset_name(a.d)
    raw = os.path.join(os.environ["nnUNet_raw"], name)
    rows = {}
    budgets = {c: a.budget for c in CONFIGURATIONS}
    for item in a.configuration_budget or []:
        config, seconds = item.split("=")
        budgets[config] = float(seconds)
    for config in CONFIGURATIONS:
        train(a.d, name, config, budgets[config])
    for config in CONFIGURATIONS:
        out = os.path.join(a.predictions or tempfile.mkdtemp(), config)
        seconds = predict(name, config, os.path.join(raw, "imagesTs"), out, not a.disable_tta)
        rows[config] = dict(dice=dice_per_class(name, os.path.join(raw, "labelsTs"), out),
                            seconds=seconds, epochs=epochs_trained(name, config))
        print(config, rows[config])
    text = markdown(name, budgets, rows, machine_info("cpu"), argv, not a.disable_tta)
    if a.o:
        with open(a.o, "a") as f:
            f.write("\n" + text)
    return text


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-d", required=True, help="dataset name or id (planned, with imagesTs/labelsTs)")
    p.add_argument("--budget", type=float, required=True, help="training CPU seconds per configuration")
    p.add_argument("--configuration_budget", nargs="+", metavar="CONFIG=SECONDS",
                   help="another budget for a configuration (e.g. 2d=180: the 2d run given the "
                        "iterations 2d_mem gets from --budget)")
    p.add_argument("--predictions", help="folder for the test predictions (default: a temporary one)")
    p.add_argument("--disable_tta", action="store_true", help="no test-time mirroring")
    p.add_argument("-o", help="markdown file to append the table to")
    print(run(p.parse_args(argv), argv))


if __name__ == "__main__":
    main()
