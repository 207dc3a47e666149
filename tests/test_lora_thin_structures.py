"""SAM2LoRATrainer end to end on generated vessel-like images with an ignore region outside a
circular field of view, then thin-structure evaluation of the saved probabilities."""
import json

import numpy as np
import SimpleITK as sitk
from skimage.draw import disk, line

from tests.helpers.commands import run
from tests.helpers.workspaces import QUICK_TRAINING, workspace_env


def _vessel_case(rng, size=96):
    label = np.zeros((size, size), np.uint8)
    for _ in range(4):
        r0, c0, r1, c1 = rng.integers(5, size - 5, 4)
        for off in (0, 1):  # 2 px wide lines
            rr, cc = line(r0, c0 + off, r1, min(c1 + off, size - 1))
            label[rr, cc] = 1
    fov = np.zeros_like(label, dtype=bool)
    fov[disk((size / 2, size / 2), size / 2 - 4, shape=label.shape)] = True
    image = 1.0 - 0.6 * label + 0.1 * rng.standard_normal(label.shape)
    image[~fov] = 0.0
    label[~fov] = 2  # ignore
    return image.astype(np.float32), label, fov.astype(np.uint8)


def _write(arr, path):
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path), True)


def make_vessel_dataset(raw, n_train=6, n_test=2):
    folder = raw / "Dataset980_Vessels"
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs", "fovTs"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n_train + n_test):
        split = "Tr" if i < n_train else "Ts"
        image, label, fov = _vessel_case(rng)
        _write(image, folder / f"images{split}" / f"v{i:02d}_0000.nii.gz")
        _write(np.where(label == 2, 0, label).astype(np.uint8) if split == "Ts" else label,
               folder / f"labels{split}" / f"v{i:02d}.nii.gz")
        if split == "Ts":
            _write(fov, folder / "fovTs" / f"v{i:02d}.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "fundus"}, "labels": {"background": 0, "vessel": 1, "ignore": 2},
        "numTraining": n_train, "file_ending": ".nii.gz"}))
    return folder


def test_lora_trainer_on_thin_structures(tmp_path):
    root, env = workspace_env(tmp_path)
    folder = make_vessel_dataset(root / "nnUNet_raw")
    run("nnsam2_plan_and_preprocess", "-d", "980", "--sam2-size", "toy", "-np", "1", "-npfp",
        "1", env=env)
    run("nnsam2_train", "980", "2d", "0", "-tr", "SAM2SmokeTrainer_LoRA", "-device", "cpu",
        "--random-init", env={**env, **QUICK_TRAINING})
    pred = tmp_path / "pred"
    out = run("nnsam2_predict", "-i", str(folder / "imagesTs"), "-o", str(pred), "-d", "980",
              "-tr", "SAM2SmokeTrainer_LoRA", "-f", "0", "-device", "cpu",
              "--save_probabilities", "-npp", "1", "-nps", "1", env=env)
    assert "merged" in out.stdout and "LoRA" in out.stdout
    summary = tmp_path / "thin.json"
    run("nnsam2_evaluate", "-ref", str(folder / "labelsTs"), "-pred", str(pred), "-fov",
        str(folder / "fovTs"), "-l", "1", "--cldice", "-o", str(summary), env=env)
    result = json.loads(summary.read_text())
    means = result["mean"]["1"]
    for metric in ("dice", "sensitivity", "specificity", "auc", "cldice"):
        assert metric in means
