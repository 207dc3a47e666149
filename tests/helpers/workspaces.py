"""nnU-Net workspaces for the tests: folders, the generated demo dataset planned once per session
and copied where a test writes, the test-only trainers (``tests/helpers/trainers``)."""
import os
import shutil
from pathlib import Path

from dataset_conversion.demo_dataset import generate_demo_dataset
from tests.helpers.commands import run

TRAINERS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainers")

QUICK_TRAINING = {"SMOKE_SKIP_VALIDATION": "1", "nnUNet_n_proc_DA": "0", "SMOKE_ITERATIONS": "1"}


def workspace_env(root: Path):
    """nnU-Net folders under ``root``, the test-only trainers findable; returns (root, env)."""
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (root / var).mkdir()
        env[var] = str(root / var)
    env["nnUNet_extTrainer"] = TRAINERS_DIR
    return root, env


def planned_workspace(root: Path, num_train: int = 6, num_test: int = 2):
    """:func:`workspace_env` with a demo dataset planned and preprocessed for the toy SAM2 size;
    returns (root, env)."""
    root, env = workspace_env(root)
    generate_demo_dataset(root / "nnUNet_raw", dataset_id=990, dim=2, num_train=num_train,
                          num_test=num_test)
    run("nnsam2_plan_and_preprocess", "-d", "990", "--sam2-size", "toy", "--patch-size", "64",
        "64", "-np", "1", "-npfp", "1", env=env)
    return root, env


def copy_workspace(template, root: Path):
    """A copy under ``root`` of the workspace ``template`` ((root, env) of
    :func:`planned_workspace`, e.g. the session's ``demo_planned``); far cheaper than planning
    again. Returns (root, env)."""
    source, source_env = template
    shutil.copytree(source, root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(source_env)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[var] = str(root / var)
    return root, env


def model_folder(root, trainer):
    return root / "nnUNet_results" / "Dataset990_Demo2D" / f"{trainer}__nnSAM2Plans__2d"


def train_demo_model(env):
    """What the session's ``demo_trained`` runs: fold 0 of the smoke trainer, from random weights,
    every parameter trained, with nnU-Net's final validation."""
    run("nnsam2_train", "990", "2d", "0", "-tr", "SAM2SmokeTrainer", "-device", "cpu",
        "--random-init", "--train-all", env=env)
