"""Check 8: the commands a user runs, each in a fresh process, in a temporary folder: the demo
(or, in the quick run, its steps with a two-iteration trainer), then ``nnsam2_predict`` and
plain ``nnUNetv2_predict`` on the held-out cases, compared, and ``nnsam2_train --c``."""
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from nnsam2.benchmark.acceptance.core import Context, Outcome
from nnsam2.demo import DEMO_TRAINER
from nnsam2.experiment_planning.planner import PLANS_NAME
from nnsam2.training.trainer_lookup import EXT_TRAINER_DIR

DATASET_ID = 990
DATASET = f"Dataset{DATASET_ID}_Demo2D"  # dataset_conversion.demo_dataset's name for 2D
SHORT_TRAINER = "WholeCaseBench_HP"  # one epoch of two iterations, no final validation
MIN_AGREEMENT = 0.999  # voxels: batched and patch-at-a-time differ by rounding at ties only
TIMEOUT_S = 900


def run(command: List[str], env: Dict[str, str]) -> str:
    """Run ``command``; its stdout and stderr, or RuntimeError naming the command and its last
    output line."""
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeError(f"{command[0]} exited {proc.returncode}: {last}")
    return proc.stdout + proc.stderr


def workspace_env(root: Path) -> Dict[str, str]:
    env = dict(os.environ, nnUNet_extTrainer=EXT_TRAINER_DIR)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[var] = str(root / var)
    return env


def train_short(root: Path, env: Dict[str, str], device: str) -> None:
    """The demo's steps at the smallest settings: 6 + 1 generated cases, the toy size at 64x64,
    two training iterations, no final validation."""
    from dataset_conversion.demo_dataset import generate_demo_dataset

    generate_demo_dataset(env["nnUNet_raw"], dataset_id=DATASET_ID, dim=2, num_train=6,
                          num_test=1)
    run(["nnsam2_plan_and_preprocess", "-d", str(DATASET_ID), "--sam2-size", "toy",
         "--patch-size", "64", "64", "-np", "1", "-npfp", "1"], env)
    run(["nnsam2_train", str(DATASET_ID), "2d", "0", "-tr", SHORT_TRAINER, "-device", device,
         "--random-init", "--train-all", "--disable_progress_bar"],
        {**env, "nnUNet_n_proc_DA": "0"})  # augmentation in the training process


def read_segmentations(folder: Path) -> Dict[str, np.ndarray]:
    import SimpleITK as sitk

    return {p.name: sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
            for p in sorted(folder.glob("*.nii.gz"))}


def compare_predictions(root: Path, env: Dict[str, str], device: str, trainer: str) -> str:
    images = str(root / "nnUNet_raw" / DATASET / "imagesTs")
    common = ["-i", images, "-d", str(DATASET_ID), "-tr", trainer, "-p", PLANS_NAME, "-c", "2d",
              "-f", "0", "-device", device, "-npp", "1", "-nps", "1"]
    run(["nnsam2_predict", "-o", str(root / "ours"), *common, "--disable_progress_bar"], env)
    run(["nnUNetv2_predict", "-o", str(root / "plain"), *common], env)
    ours, plain = read_segmentations(root / "ours"), read_segmentations(root / "plain")
    if not ours or sorted(ours) != sorted(plain):
        raise RuntimeError(f"predicted cases differ: {sorted(ours)} vs {sorted(plain)}")
    differ = sum(int((ours[k] != plain[k]).sum()) for k in ours)
    voxels = sum(v.size for v in ours.values())
    if differ > (1 - MIN_AGREEMENT) * voxels:
        raise RuntimeError(f"nnsam2_predict and nnUNetv2_predict differ in {differ} of {voxels} "
                           f"voxels (more than {100 * (1 - MIN_AGREEMENT):g}%)")
    return f"{len(ours)} cases, {differ} of {voxels} voxels differ"


def check_end_to_end(ctx: Context) -> Outcome:
    device = ctx.device.type
    demo = ctx.settings.end_to_end == "demo"
    trainer = DEMO_TRAINER if demo else SHORT_TRAINER
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="nnsam2_acceptance_") as tmp:
        root = Path(tmp)
        env = workspace_env(root)
        start = time.perf_counter()
        if demo:
            run(["nnsam2_demo", "-device", device, "-o", str(root)], env)
        else:
            train_short(root, env, device)
        seconds["train"] = time.perf_counter() - start
        start = time.perf_counter()
        parity = compare_predictions(root, env, device, trainer)
        seconds["predict"] = time.perf_counter() - start
        resumed = run(["nnsam2_train", str(DATASET_ID), "2d", "0", "-tr", trainer, "-device",
                       device, "--c", "--disable_progress_bar"], env)
        if "continuing training" not in resumed:
            raise RuntimeError("nnsam2_train --c did not continue the finished run")
    first = "nnsam2_demo" if demo else f"short pipeline ({SHORT_TRAINER}, 2 iterations)"
    return Outcome(True, f"{first} {seconds['train']:.0f} s; both predictors "
                         f"{seconds['predict']:.0f} s: {parity}; --c continued",
                   f"{trainer}; pass: every command exits 0, segmentations agree on >= "
                   f"{100 * MIN_AGREEMENT:g}% of voxels, --c loads the checkpoint")
