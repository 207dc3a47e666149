"""The real commands, each in a fresh process, on a generated dataset: plan + preprocess, train a
few iterations of the toy SAM2 on CPU, continue with --c, predict raw NIfTI, evaluate; and the bad
inputs users hit first."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_conversion.demo_dataset import generate_demo_dataset
from nnsam2.cli.train import _check_fold
from nnsam2.nnunet.environment import UsageError

SMOKE_TRAINERS = textwrap.dedent('''
    import os
    from nnsam2.nnunet.trainers import (SAM2DualAdapterTrainer, SAM2DualAdapterTrainer_LW,
                                        SAM2DualAdapterTrainer_FullDecoder, SAM2LoRATrainer,
                                        SAM2VanillaTrainer)

    class _Smoke:
        sam2_iterations_per_epoch = int(os.environ.get("SMOKE_ITERATIONS", "2"))
        sam2_val_iterations_per_epoch = 1
        sam2_initial_lr = 1e-3
        sam2_num_epochs = int(os.environ.get("SMOKE_EPOCHS", "1"))  # read in each fresh process

        def perform_actual_validation(self, save_probabilities=False):
            if os.environ.get("SMOKE_SKIP_VALIDATION") != "1":  # tests that only need weights
                super().perform_actual_validation(save_probabilities)

    class SAM2SmokeTrainer(_Smoke, SAM2DualAdapterTrainer):
        pass

    class SAM2SmokeTrainer_LW(_Smoke, SAM2DualAdapterTrainer_LW):
        pass

    class SAM2SmokeTrainer_LoRA(_Smoke, SAM2LoRATrainer):
        pass

    class SAM2SmokeTrainer_Vanilla(_Smoke, SAM2VanillaTrainer):
        pass

    class SAM2SmokeTrainer_FullDecoder(_Smoke, SAM2DualAdapterTrainer_FullDecoder):
        pass
''')


# For tests that need only a trained model folder: no final validation (its spawned export pool
# costs seconds), no augmentation worker processes (planning itself needs nnUNet_n_proc_DA > 0),
# one training iteration per epoch.
QUICK_TRAINING = {"SMOKE_SKIP_VALIDATION": "1", "nnUNet_n_proc_DA": "0", "SMOKE_ITERATIONS": "1"}


def run(*cmd, env, ok=True):
    proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=900)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def run_together(*calls, ok=True, at_once=None):
    """:func:`run` for independent commands, each a (command list, env) pair, ``at_once`` at a
    time (default: all; short commands spend most of their time importing, each on one core);
    returns their results in order."""
    with ThreadPoolExecutor(at_once or len(calls)) as pool:
        return list(pool.map(lambda call: run(*call[0], env=call[1], ok=ok), calls))


def workspace_env(root: Path):
    """nnU-Net folders under ``root`` and a folder of small smoke trainers; returns (root, env)."""
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (root / var).mkdir()
        env[var] = str(root / var)
    (root / "trainers").mkdir()
    (root / "trainers" / "smoke_trainers.py").write_text(SMOKE_TRAINERS)
    env["nnUNet_extTrainer"] = str(root / "trainers")
    return root, env


def planned_workspace(root: Path, num_train: int = 6, num_test: int = 2, **trainer_files: str):
    """:func:`workspace_env` with extra trainer files (name: source) and a demo dataset planned
    and preprocessed for the toy SAM2 size; returns (root, env)."""
    root, env = workspace_env(root)
    for name, source in trainer_files.items():
        (root / "trainers" / f"{name}.py").write_text(source)
    generate_demo_dataset(root / "nnUNet_raw", dataset_id=990, dim=2, num_train=num_train,
                          num_test=num_test)
    run("nnsam2_plan_and_preprocess", "-d", "990", "--sam2-size", "toy", "--patch-size", "64",
        "64", "-np", "1", "-npfp", "1", env=env)
    return root, env


def copy_workspace(template, root: Path, **trainer_files: str):
    """A copy under ``root`` of the workspace ``template`` ((root, env) of
    :func:`planned_workspace`, e.g. the session's ``demo_planned``), with extra trainer files
    (name: source); far cheaper than planning again. Returns (root, env)."""
    source, source_env = template
    shutil.copytree(source, root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(source_env)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[var] = str(root / var)
    env["nnUNet_extTrainer"] = str(root / "trainers")
    for name, source_code in trainer_files.items():
        (root / "trainers" / f"{name}.py").write_text(source_code)
    return root, env


@pytest.fixture(scope="module")
def workspace(demo_planned, tmp_path_factory):
    """A copy of the session's planned demo dataset, with the smoke trainers."""
    return copy_workspace(demo_planned, tmp_path_factory.mktemp("e2e"))


def model_folder(root, trainer):
    return root / "nnUNet_results" / "Dataset990_Demo2D" / f"{trainer}__nnSAM2Plans__2d"


def test_plans_are_sam2_plans(workspace):
    root, _ = workspace
    plans = json.loads((root / "nnUNet_preprocessed" / "Dataset990_Demo2D" /
                        "nnSAM2Plans.json").read_text())
    config = plans["configurations"]["2d"]
    assert list(plans["configurations"]) == ["2d"]
    assert config["patch_size"] == [64, 64] and config["sam2"]["size"] == "toy"
    assert config["batch_size"] >= 2


def train_demo_model(env):
    """What the session's ``demo_trained`` runs: fold 0 of the smoke trainer, from random weights,
    every parameter trained, with nnU-Net's final validation."""
    run("nnsam2_train", "990", "2d", "0", "-tr", "SAM2SmokeTrainer", "-device", "cpu",
        "--random-init", "--train-all", env=env)


def test_train_continue_predict_evaluate(demo_trained, tmp_path):
    fold = model_folder(demo_trained[0], "SAM2SmokeTrainer") / "fold_0"  # train_demo_model's
    assert (fold / "checkpoint_final.pth").is_file()
    log = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert "RANDOM INITIALISATION" in log and "--train-all" in log and "trainable" in log

    root, env = copy_workspace(demo_trained, tmp_path / "workspace")  # --c changes the model
    raw = root / "nnUNet_raw" / "Dataset990_Demo2D"
    fold = model_folder(root, "SAM2SmokeTrainer") / "fold_0"
    # the continued run's own final validation would repeat the first run's: skipped
    run("nnsam2_train", "990", "2d", "0", "-tr", "SAM2SmokeTrainer", "-device", "cpu", "--c",
        env={**env, **QUICK_TRAINING, "SMOKE_EPOCHS": "2"})
    import torch
    ckpt = torch.load(fold / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    assert ckpt["current_epoch"] == 2
    log = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert "continuing training; !!! RANDOM INITIALISATION" in log  # said on every start

    pred = tmp_path / "pred"
    out = run("nnsam2_predict", "-i", str(raw / "imagesTs"), "-o", str(pred), "-d", "990",
              "-tr", "SAM2SmokeTrainer", "-f", "0", "-device", "cpu", "--save_probabilities",
              "-npp", "1", "-nps", "1", env=env)
    cases = sorted(p.name for p in (raw / "labelsTs").iterdir())
    assert sorted(p.name for p in pred.glob("*.nii.gz")) == cases
    assert (pred / cases[0].replace(".nii.gz", ".npz")).is_file()
    ref = sitk.ReadImage(str(raw / "labelsTs" / cases[0]))
    got = sitk.ReadImage(str(pred / cases[0]))
    assert got.GetSize() == ref.GetSize() and got.GetSpacing() == ref.GetSpacing()
    assert set(np.unique(sitk.GetArrayFromImage(got))) <= {0, 1, 2}

    run("nnUNetv2_evaluate_simple", str(raw / "labelsTs"), str(pred), "-l", "1", "2", env=env)
    summary = json.loads((pred / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2"}
    assert "nnsam2" not in out.stderr.lower() or "error" not in out.stderr.lower()


def test_lw_model_is_reparameterised_and_plain_nnunet_predict_works(workspace, tmp_path):
    root, env = workspace
    raw = root / "nnUNet_raw" / "Dataset990_Demo2D"
    run("nnsam2_train", "990", "2d", "0", "-tr", "SAM2SmokeTrainer_LW", "-device", "cpu",
        "--random-init", env={**env, **QUICK_TRAINING})
    common = ["-i", str(raw / "imagesTs"), "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1",
              "--disable_tta"]
    args = [*common, "-d", "990", "-tr", "SAM2SmokeTrainer_LW", "-p", "nnSAM2Plans", "-c", "2d"]
    ext = os.pathsep.join([str(Path(__file__).parents[1] / "nnsam2" / "nnunet" / "ext_trainers"),
                           env["nnUNet_extTrainer"]])
    ours, _ = run_together(
        (["nnsam2_predict", "-o", str(tmp_path / "ours"), *common, "-m",  # model-folder mode
          str(model_folder(root, "SAM2SmokeTrainer_LW"))], env),
        (["nnUNetv2_predict", "-o", str(tmp_path / "plain"), *args],
         {**env, "nnUNet_extTrainer": ext}))
    assert "re-parameterised" in ours.stdout
    for case in (tmp_path / "ours").glob("*.nii.gz"):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(case)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "plain" / case.name)))
        assert (a != b).mean() < 0.01  # fused vs unfused: equal up to float rounding at ties


def test_bad_inputs(workspace, tmp_path):
    root, env = workspace
    results = root / "nnUNet_results" / "Dataset990_Demo2D"
    wrong = tmp_path / "wrong_size.pt"
    import torch
    torch.save({"model": {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(96, 3, 7, 7)}},
               wrong)
    no_raw = {k: v for k, v in env.items() if k != "nnUNet_raw"}
    train = ["nnsam2_train", "990", "2d"]
    unknown, unset, no_init, bad_fold, wrong_size, missing = run_together(
        (["nnsam2_train", "999", "2d", "0", "-device", "cpu", "--random-init"], env),
        (["nnsam2_plan_and_preprocess", "-d", "990"], no_raw),
        ([*train, "1", "-device", "cpu"], env),
        ([*train, "first", "-device", "cpu", "--random-init"], env),
        ([*train, "1", "-device", "cpu", "--sam2-checkpoint", str(wrong)], env),
        ([*train, "1", "-device", "cpu", "--sam2-checkpoint", str(tmp_path / "missing.pt")], env),
        ok=False)

    assert unknown.returncode == 1 and "unknown dataset '999'" in unknown.stderr
    assert unset.returncode == 1 and "nnUNet_raw is not set" in unset.stderr
    assert no_init.returncode == 1 and "--random-init" in no_init.stderr
    assert bad_fold.returncode == 1 and "fold must be a number" in bad_fold.stderr
    assert wrong_size.returncode == 1 and "wrong_size.pt" in wrong_size.stderr
    assert "another SAM2 size" in wrong_size.stderr
    assert missing.returncode == 1 and "missing.pt" in missing.stderr
    # none of the refused trainings left a model folder
    assert not (results / "SAM2DualAdapterTrainer__nnSAM2Plans__2d").exists()


def test_too_few_cases_for_five_folds_is_a_clear_error(tmp_path):
    folder = tmp_path / "Dataset201_Four"
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({"numTraining": 4}))
    with pytest.raises(UsageError, match="4 training case.*fold 'all'.*splits_final.json"):
        _check_fold(str(folder), "0")
    _check_fold(str(folder), "all")
    (folder / "splits_final.json").write_text(json.dumps([{"train": ["a"], "val": ["b"]}]))
    _check_fold(str(folder), "0")  # the user's own split decides


def test_bad_prediction_inputs_leave_no_output(demo_trained, tmp_path):
    root, env = demo_trained
    image = sitk.ReadImage(str(next((root / "nnUNet_raw" / "Dataset990_Demo2D" /
                                     "imagesTs").iterdir())))
    extra = tmp_path / "two_channels"
    extra.mkdir()
    sitk.WriteImage(image, str(extra / "case_0000.nii.gz"))
    sitk.WriteImage(image, str(extra / "case_0001.nii.gz"))
    volume = tmp_path / "volume"
    volume.mkdir()
    sitk.WriteImage(sitk.Image([64, 64, 5], sitk.sitkFloat32), str(volume / "vol_0000.nii.gz"))
    predict = ["nnsam2_predict", "-d", "990", "-tr", "SAM2SmokeTrainer", "-f", "0", "-device",
               "cpu"]
    two_channels, three_d, absent = run_together(
        *[([*predict, "-i", str(folder), "-o", str(tmp_path / out)], env)
          for folder, out in ((extra, "out1"), (volume, "out2"),
                              (tmp_path / "does_not_exist", "out3"))], ok=False)

    assert two_channels.returncode == 1
    assert "case case" in two_channels.stderr and "1 channel" in two_channels.stderr
    assert three_d.returncode == 1 and "vol_0000.nii.gz is a 3D image" in three_d.stderr
    assert absent.returncode == 1 and "does not exist" in absent.stderr
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()
