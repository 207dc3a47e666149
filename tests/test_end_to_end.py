"""The real commands, each in a fresh process, on a generated dataset: plan + preprocess, train a
few iterations of the toy SAM2 on CPU, continue with --c, predict raw NIfTI, evaluate; and the bad
inputs users hit first."""
import json
import os
import re

import numpy as np
import pytest
import SimpleITK as sitk

from nnsam2.training.run_training import check_fold
from nnsam2.training.trainer_lookup import EXT_TRAINER_DIR
from nnsam2.utils.nnunet_env import UsageError
from tests.helpers.checkpoints import WritesAFile
from tests.helpers.commands import run, run_together
from tests.helpers.workspaces import QUICK_TRAINING, copy_workspace, model_folder


@pytest.fixture(scope="module")
def workspace(demo_planned, tmp_path_factory):
    """A copy of the session's planned demo dataset, with the smoke trainers."""
    return copy_workspace(demo_planned, tmp_path_factory.mktemp("e2e"))


def test_plans_are_sam2_plans(workspace):
    root, _ = workspace
    plans = json.loads((root / "nnUNet_preprocessed" / "Dataset990_Demo2D" /
                        "nnSAM2Plans.json").read_text())
    config = plans["configurations"]["2d"]
    assert list(plans["configurations"]) == ["2d"]
    assert config["patch_size"] == [64, 64] and config["sam2"]["size"] == "toy"
    assert config["batch_size"] >= 2


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
    ext = os.pathsep.join([EXT_TRAINER_DIR, env["nnUNet_extTrainer"]])
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
    evil, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    torch.save({"model": {}, "x": WritesAFile(str(marker))}, evil)
    no_raw = {k: v for k, v in env.items() if k != "nnUNet_raw"}
    train = ["nnsam2_train", "990", "2d"]
    unknown, unset, no_init, bad_fold, wrong_size, missing, malicious, folder = run_together(
        (["nnsam2_train", "999", "2d", "0", "-device", "cpu", "--random-init"], env),
        (["nnsam2_plan_and_preprocess", "-d", "990"], no_raw),
        ([*train, "1", "-device", "cpu"], env),
        ([*train, "first", "-device", "cpu", "--random-init"], env),
        ([*train, "1", "-device", "cpu", "--sam2-checkpoint", str(wrong)], env),
        ([*train, "1", "-device", "cpu", "--sam2-checkpoint", str(tmp_path / "missing.pt")], env),
        ([*train, "1", "-device", "cpu", "--sam2-checkpoint", str(evil)], env),
        ([*train, "1", "-device", "cpu", "--sam2-checkpoint", str(tmp_path)], env),
        ok=False)

    assert unknown.returncode == 1 and "unknown dataset '999'" in unknown.stderr
    assert unset.returncode == 1 and "nnUNet_raw is not set" in unset.stderr
    assert no_init.returncode == 1 and "--random-init" in no_init.stderr
    assert bad_fold.returncode == 1 and "fold must be a number" in bad_fold.stderr
    assert wrong_size.returncode == 1 and "wrong_size.pt" in wrong_size.stderr
    assert "another SAM2 size" in wrong_size.stderr
    assert missing.returncode == 1 and "missing.pt" in missing.stderr
    # a malicious file is refused by name, in one line, without torch's warnings or advice
    assert malicious.returncode == 1 and not marker.exists()
    assert re.fullmatch(f"nnsam2_train: error: refused to load SAM2 checkpoint {evil}: it holds "
                        r"(io|builtins)\.open, which nnU-Net and SAM2 checkpoints never hold; "
                        r"unpickling it could run code", malicious.stderr.strip().splitlines()[-1])
    assert "Warning" not in malicious.stderr and "weights_only" not in malicious.stderr
    assert folder.returncode == 1 and f"--sam2-checkpoint {tmp_path} is a folder: pass the " \
        f"checkpoint file (evil.pt, wrong_size.pt are in it)" in folder.stderr
    # none of the refused trainings left a model folder
    assert not (results / "SAM2DualAdapterTrainer__nnSAM2Plans__2d").exists()


def test_too_few_cases_for_five_folds_is_a_clear_error(tmp_path):
    folder = tmp_path / "Dataset201_Four"
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({"numTraining": 4}))
    with pytest.raises(UsageError, match="4 training case.*fold 'all'.*splits_final.json"):
        check_fold(str(folder), "0")
    check_fold(str(folder), "all")
    (folder / "splits_final.json").write_text(json.dumps([{"train": ["a"], "val": ["b"]}]))
    check_fold(str(folder), "0")  # the user's own split decides


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
