"""Thin-structure metrics on hand-computable arrays, and the nnsam2_evaluate CLI end to end."""
import json
import math
import os
import runpy
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from skimage import io as skio

from nnsam2.cli.evaluate import main
from nnsam2.evaluation import (case_metrics, cl_dice, confusion_counts, dice, evaluate_folders,
                               pixel_auc, sensitivity, specificity)
from nnsam2.evaluation.thin_structures import accuracy


# ----------------------------------------------------------------------------- pure metrics

def test_counts_and_ratios_on_3x3():
    ref = np.array([[1, 1, 0], [0, 0, 0], [0, 0, 0]])
    pred = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    counts = confusion_counts(pred, ref)
    assert counts == {"tp": 1, "fp": 1, "fn": 1, "tn": 6}
    assert dice(counts) == pytest.approx(0.5)
    assert sensitivity(counts) == pytest.approx(0.5)
    assert specificity(counts) == pytest.approx(6 / 7)
    assert accuracy(counts) == pytest.approx(7 / 9)


def test_undefined_ratios_are_nan():
    empty = np.zeros((4, 4))
    counts = confusion_counts(empty, empty)
    assert math.isnan(dice(counts)) and math.isnan(sensitivity(counts))
    assert specificity(counts) == 1.0


@pytest.mark.parametrize("prob, expected", [
    ([0.9, 0.4, 0.6, 0.1], 1.0),  # every positive above every negative
    ([0.9, 0.6, 0.4, 0.1], 0.75),  # 3 of 4 positive/negative pairs ordered
    ([0.1, 0.9, 0.2, 0.8], 0.0),
    ([0.5, 0.5, 0.5, 0.5], 0.5),  # ties count half
])
def test_pixel_auc_known_values(prob, expected):
    ref = np.array([1, 0, 1, 0])
    assert pixel_auc(np.array(prob), ref) == pytest.approx(expected)


def test_pixel_auc_single_class_is_nan():
    assert math.isnan(pixel_auc(np.array([0.2, 0.7]), np.array([1, 1])))


def test_fov_restriction_changes_specificity():
    ref = np.zeros((6, 6), dtype=int)
    ref[2:4, 1:5] = 1
    pred = ref.copy()
    pred[0, 0] = pred[5, 5] = 1  # two false positives in the corners
    fov = np.zeros((6, 6), dtype=np.uint8)
    fov[1:5, 1:5] = 255  # corners outside the field of view
    assert specificity(confusion_counts(pred, ref)) == pytest.approx(26 / 28)
    inside = confusion_counts(pred, ref, fov)
    assert inside == {"tp": 8, "fp": 0, "fn": 0, "tn": 8}
    assert specificity(inside) == 1.0
    with pytest.raises(ValueError, match="field-of-view"):
        confusion_counts(pred, ref, fov[:5])


def test_fov_restricts_auc():
    ref, prob = np.array([1, 0, 0]), np.array([0.6, 0.2, 0.9])
    assert pixel_auc(prob, ref) == pytest.approx(0.5)
    assert pixel_auc(prob, ref, fov=np.array([1, 1, 0])) == pytest.approx(1.0)


def _vessel_tree(shape=(32, 32)) -> np.ndarray:
    """A 3 px thick horizontal vessel with a vertical branch."""
    v = np.zeros(shape, dtype=np.uint8)
    v[14:17, 2:30] = 1
    v[4:15, 20:23] = 1
    return v


def test_cldice_identical_vessels_is_one():
    v = _vessel_tree()
    assert cl_dice(v, v) == pytest.approx(1.0)
    assert cl_dice(v[None], v[None], per_slice=False) == pytest.approx(1.0)  # 3D skeleton


def test_cldice_broken_vessel_is_below_one():
    ref = _vessel_tree()
    pred = ref.copy()
    pred[14:17, 8:12] = 0  # 4 px gap in the main vessel
    score = cl_dice(pred, ref)
    assert 0.5 < score < 1.0
    counts = confusion_counts(pred, ref)
    assert counts["fp"] == 0  # all predicted skeleton is inside ref: only topology sensitivity drops


def test_cldice_empty_cases():
    v, empty = _vessel_tree(), np.zeros((32, 32))
    assert math.isnan(cl_dice(empty, empty))
    assert cl_dice(v, empty) == 0.0 and cl_dice(empty, v) == 0.0


def test_case_metrics_multi_label_with_probabilities():
    ref = np.array([[[0, 1, 2, 2]]])  # (Z, Y, X) = (1, 1, 4)
    pred = np.array([[[0, 1, 1, 2]]])
    probs = np.stack([ref == k for k in range(3)]).astype(float)  # (K, Z, Y, X), perfect
    out = case_metrics(pred, ref, [1, 2], probs, cldice_labels=[2])
    assert out[1]["dice"] == pytest.approx(2 / 3) and out[2]["dice"] == pytest.approx(2 / 3)
    assert out[1]["auc"] == 1.0 and "cldice" not in out[1] and "cldice" in out[2]
    assert math.isnan(case_metrics(pred, ref, [1])[1]["auc"])


# ----------------------------------------------------------------------------- folders and CLI

def _write_nifti(array: np.ndarray, path: str) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.uint8)), path)  # (Z, Y, X)


def _probabilities(seg: np.ndarray, num_classes: int = 2) -> np.ndarray:
    onehot = np.stack([seg == k for k in range(num_classes)]).astype(np.float32)  # (K, Z, Y, X)
    return 0.8 * onehot + 0.2 / num_classes


def _make_nifti_dataset(root, cases=("drive_001", "drive_002"), npz=True):
    ref_dir, pred_dir, fov_dir = (root / n for n in ("labelsTs", "pred", "fovTs"))
    for d in (ref_dir, pred_dir, fov_dir):
        d.mkdir()
    for i, case in enumerate(cases):
        ref = _vessel_tree()[None]  # (1, 32, 32): 2D case stored with Z = 1
        pred = ref.copy()
        pred[0, 14:17, 8:8 + 2 * i] = 0  # case 2 has a gap
        pred[0, 0, 0] = 1  # false positive outside the FOV
        fov = np.zeros_like(ref)
        fov[0, 1:31, 1:31] = 1
        _write_nifti(ref, str(ref_dir / f"{case}.nii.gz"))
        _write_nifti(pred, str(pred_dir / f"{case}.nii.gz"))
        _write_nifti(fov, str(fov_dir / f"{case}.nii.gz"))
        if npz:
            np.savez_compressed(pred_dir / f"{case}.npz", probabilities=_probabilities(pred))
    return ref_dir, pred_dir, fov_dir


def test_cli_end_to_end_nifti(tmp_path, capsys):
    ref_dir, pred_dir, fov_dir = _make_nifti_dataset(tmp_path)
    out = tmp_path / "summary.json"
    rc = main(["-ref", str(ref_dir), "-pred", str(pred_dir), "-fov", str(fov_dir),
               "-o", str(out), "--cldice"])
    assert rc == 0
    summary = json.loads(out.read_text())
    assert summary["labels"] == [1] and summary["file_ending"] == ".nii.gz"
    first, second = (c["metrics"]["1"] for c in summary["metric_per_case"])
    assert first["dice"] == 1.0 and first["specificity"] == 1.0 and first["cldice"] == 1.0
    assert first["auc"] == 1.0 and second["cldice"] < 1.0 and second["sensitivity"] < 1.0
    assert summary["mean"]["1"]["dice"] == pytest.approx((1.0 + second["dice"]) / 2)
    table = capsys.readouterr().out
    assert "drive_002" in table and "mean" in table and "cldice[1]" in table


def test_without_fov_the_corner_false_positive_counts(tmp_path):
    ref_dir, pred_dir, _ = _make_nifti_dataset(tmp_path, cases=("a",))
    summary = evaluate_folders(str(ref_dir), str(pred_dir), file_ending=".nii.gz")
    metrics = summary["metric_per_case"][0]["metrics"]["1"]
    assert metrics["fp"] == 1 and metrics["specificity"] < 1.0


def test_missing_npz_gives_null_auc_with_note(tmp_path, capsys):
    ref_dir, pred_dir, _ = _make_nifti_dataset(tmp_path, npz=False)
    out = tmp_path / "s.json"
    assert main(["-ref", str(ref_dir), "-pred", str(pred_dir), "-o", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["mean"]["1"]["auc"] is None
    assert all(c["metrics"]["1"]["auc"] is None for c in summary["metric_per_case"])
    assert any("--save_probabilities" in n for n in summary["notes"])
    assert "note: auc is null" in capsys.readouterr().out


def _make_drive_raw(tmp_path):
    """nnU-Net raw layout as Dataset114_DRIVE writes it: 0/1 FOV PNGs, label 2 = ignore outside."""
    raw = tmp_path / "nnUNet_raw" / "Dataset114_DRIVE"
    ref_dir, fov_dir, pred_dir = raw / "labelsTs", raw / "fovTs", tmp_path / "pred"
    for d in (ref_dir, fov_dir, pred_dir):
        d.mkdir(parents=True)
    labels = {"background": 0, "vessel": 1, "ignore": 2}
    (raw / "dataset.json").write_text(json.dumps({"labels": labels, "file_ending": ".png"}))
    vessels = _vessel_tree()
    fov = np.zeros_like(vessels)
    fov[1:31, 1:31] = 1
    ref = np.where(fov == 1, vessels, 2).astype(np.uint8)
    pred = vessels.copy()
    pred[0, :] = 1  # false positives outside the FOV
    skio.imsave(ref_dir / "drive_01.png", ref, check_contrast=False)
    skio.imsave(pred_dir / "drive_01.png", pred, check_contrast=False)
    skio.imsave(fov_dir / "drive_01.png", fov, check_contrast=False)
    np.savez_compressed(pred_dir / "drive_01.npz", probabilities=_probabilities(pred[None]))
    (pred_dir / "plans.json").write_text("{}")  # nnU-Net's extra files are ignored
    return ref_dir, pred_dir, fov_dir


def test_cli_end_to_end_png_drive_layout(tmp_path):
    ref_dir, pred_dir, fov_dir = _make_drive_raw(tmp_path)
    assert main(["-ref", str(ref_dir), "-pred", str(pred_dir), "-fov", str(fov_dir),
                 "--cldice", "1"]) == 0
    summary = json.loads((pred_dir / "summary_thin_structures.json").read_text())
    assert summary["file_ending"] == ".png" and summary["labels"] == [1]  # not the ignore label
    assert summary["ignore_label"] == 2
    assert summary["mean"]["1"] == {"dice": 1.0, "sensitivity": 1.0, "specificity": 1.0,
                                    "accuracy": 1.0, "auc": 1.0, "cldice": 1.0}


def test_ignore_label_alone_excludes_outside_fov(tmp_path):
    ref_dir, pred_dir, _ = _make_drive_raw(tmp_path)
    summary = evaluate_folders(str(ref_dir), str(pred_dir))  # ignore label from dataset.json
    assert summary["mean"]["1"]["specificity"] == 1.0
    summary = evaluate_folders(str(ref_dir), str(pred_dir), ignore_label=None, labels=[1])
    assert summary["mean"]["1"]["specificity"] < 1.0


def _assert_failed_cleanly(rc, capsys, out, name):
    assert rc == 1
    assert name in capsys.readouterr().err
    assert not out.exists()
    assert not [f for f in os.listdir(out.parent) if f.startswith(".tmp_")]


def test_missing_prediction_fails_with_file_name(tmp_path, capsys):
    ref_dir, pred_dir, _ = _make_nifti_dataset(tmp_path)
    (pred_dir / "drive_002.nii.gz").unlink()
    out = tmp_path / "summary.json"
    rc = main(["-ref", str(ref_dir), "-pred", str(pred_dir), "-o", str(out)])
    _assert_failed_cleanly(rc, capsys, out, "drive_002.nii.gz")


def test_shape_mismatch_fails_with_file_name(tmp_path, capsys):
    ref_dir, pred_dir, _ = _make_nifti_dataset(tmp_path)
    _write_nifti(np.zeros((1, 16, 32)), str(pred_dir / "drive_002.nii.gz"))
    out = tmp_path / "summary.json"
    rc = main(["-ref", str(ref_dir), "-pred", str(pred_dir), "-o", str(out)])
    _assert_failed_cleanly(rc, capsys, out, "drive_002.nii.gz")


def test_wrong_fov_size_fails_with_file_name(tmp_path, capsys):
    ref_dir, pred_dir, fov_dir = _make_nifti_dataset(tmp_path)
    _write_nifti(np.ones((1, 30, 32)), str(fov_dir / "drive_001.nii.gz"))
    out = tmp_path / "summary.json"
    rc = main(["-ref", str(ref_dir), "-pred", str(pred_dir), "-fov", str(fov_dir), "-o", str(out)])
    _assert_failed_cleanly(rc, capsys, out, os.path.join("fovTs", "drive_001.nii.gz"))


def test_module_exit_code_is_nonzero_on_bad_input(tmp_path, monkeypatch, capsys):
    ref_dir, pred_dir, _ = _make_nifti_dataset(tmp_path, npz=False)
    (pred_dir / "drive_001.nii.gz").unlink()
    argv = ["nnsam2_evaluate", "-ref", str(ref_dir), "-pred", str(pred_dir)]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.delitem(sys.modules, "nnsam2.cli.evaluate")  # fresh run as __main__
    with pytest.raises(SystemExit) as exit_info:  # python -m nnsam2.cli.evaluate, in-process
        runpy.run_module("nnsam2.cli.evaluate", run_name="__main__")
    assert exit_info.value.code == 1 and "drive_001.nii.gz" in capsys.readouterr().err
    assert not (pred_dir / "summary_thin_structures.json").exists()
