"""Clicks on the CPU from random weights (documentation/interactive.md): the plain demo trainer
against the same schedule with simulated clicks, on the demo (2D) and the context (3D) datasets.

    python -m experiments.click_evidence -o documentation/interactive.md [--work /tmp/clicks]

Per dataset: generate it, plan it for the toy SAM2 size (2d), train each fold (``--folds``) with
``SAM2DualAdapterTrainer_CPUDemo`` and ``SAM2DualAdapterTrainer_Interactive_CPUDemo`` (the same
6 x 30 iterations, random init, every parameter trained), read each fold's prompt-free validation
Dice (nnU-Net's final validation), then simulate 5 clicks on the interactive model's validation
cases (``nnsam2_evaluate_interactive``'s API); one row per fold. A trained fold is not retrained. The markdown is
appended to ``-o`` with the machine it ran on.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from nnsam2.benchmark.machine import machine_info

PLAIN, INTERACTIVE = "SAM2DualAdapterTrainer_CPUDemo", "SAM2DualAdapterTrainer_Interactive_CPUDemo"
CLICKS = 5
DATASETS = {"demo (2D)": 990, "context (3D)": 992}


def prepare(work: Path, dataset_id: int) -> None:
    from dataset_conversion.context_dataset import generate_context_dataset
    from dataset_conversion.demo_dataset import generate_demo_dataset
    raw = work / "nnUNet_raw"
    if any(raw.glob(f"Dataset{dataset_id}_*")):
        return
    if dataset_id == 990:
        generate_demo_dataset(raw, dataset_id=990, dim=2)
    else:
        generate_context_dataset(raw, dataset_id=992)
    subprocess.run(["nnsam2_plan_and_preprocess", "-d", str(dataset_id), "--sam2-size", "toy",
                    "-c", "2d", "-np", "2", "-npfp", "2"], check=True)


def train(dataset_id: int, trainer: str, fold: str) -> dict:
    """The fold (trained unless it is); returns its prompt-free validation summary."""
    from nnsam2.inference.predict_api import find_model_folder
    subprocess.run(["nnsam2_train", str(dataset_id), "2d", fold, "-tr", trainer, "-device", "cpu",
                    "--random-init", "--train-all", "--disable_progress_bar", "--c"], check=True,
                   stdout=subprocess.DEVNULL)
    folder = find_model_folder(dataset_id, "2d", trainer)
    with open(os.path.join(folder, f"fold_{fold}", "validation", "summary.json")) as f:
        return json.load(f)


def row(name: str, plain: dict, interactive: dict, clicks: dict) -> str:
    worst = clicks["worst_class_dice"]
    mean = clicks["mean_dice"]
    cells = [f"{plain['foreground_mean']['Dice']:.4f}",
             f"{interactive['foreground_mean']['Dice']:.4f}",
             " / ".join(f"{mean[k]:.4f}" for k in (0, 1, 3, 5)),
             ("-" if worst is None else " / ".join(f"{worst[k]:.4f}" for k in (0, 1, 3, 5))
              + f" ({clicks['worst_class_cases']} of {clicks['num_cases']})"),
             f"{clicks['noc']['NoC@85']:.2f} / {clicks['noc']['NoC@90']:.2f}"]
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", required=True, help="markdown file to append the table to")
    p.add_argument("--work", default="/tmp/nnsam2_click_evidence", help="nnU-Net folders")
    p.add_argument("--folds", nargs="+", default=["0"], help="folds, one row each (default 0)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    args = p.parse_args(argv)
    work = Path(args.work)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (work / var).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(work / var)
    os.environ.setdefault("nnUNet_n_proc_DA", "2")
    from nnsam2.interactive.evaluate_api import evaluate_model
    rows = []
    for name in args.datasets:
        dataset_id = DATASETS[name]
        prepare(work, dataset_id)
        for fold in args.folds:
            plain, interactive = (train(dataset_id, PLAIN, fold),
                                  train(dataset_id, INTERACTIVE, fold))
            clicks, _ = evaluate_model(dataset_id, "2d", INTERACTIVE, "nnSAM2Plans", [fold],
                                       "checkpoint_final.pth", CLICKS, device="cpu")
            rows.append(row(f"{name}, fold {fold}", plain, interactive, clicks))
            print(rows[-1], flush=True)
    info = machine_info("cpu")
    table = ["| dataset (fold's validation cases) | prompt-free Dice, plain | prompt-free Dice, "
             "with clicks | mean Dice after 0 / 1 / 3 / 5 clicks | worst class after 0 / 1 / 3 / "
             "5 clicks (cases) | NoC@85 / NoC@90 |", "|---|---:|---:|---:|---:|---:|", *rows]
    with open(args.o, "a", encoding="utf-8") as f:
        f.write(f"\n`python -m experiments.click_evidence -o {args.o} --folds {' '.join(args.folds)} "
                f"--datasets {' '.join(repr(d) for d in args.datasets)}` on {info['cpu']} "
                f"({info['logical_cpus']} logical CPUs), torch {info['versions'].get('torch')}:\n\n"
                + "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    sys.exit(main())
