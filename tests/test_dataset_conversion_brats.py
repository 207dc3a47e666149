"""BRATS (DeepMedic layout) converter on a tiny fake layout: output, labels, split, flat folder, bad inputs."""
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_conversion.Dataset115_BraTSDeepMedic import (CHANNEL_FILES, LABEL_FILE, MASK_FILE, convert_brats_deepmedic,
                                                       main)
from tests.helpers.converters import expect_conversion_error

SHAPE = (6, 10, 8)  # (z, y, x): 8 x 10 x 6 voxels
SPLITS = {"train": ["0005"], "validation": ["0003"], "test": ["0001"]}


def _write(arr: np.ndarray, path: Path, spacing=(1.0, 1.0, 1.0)) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin((0.0, -9.0, 0.0))
    sitk.WriteImage(img, str(path), True)


def _label(n: int) -> np.ndarray:
    return ((np.arange(np.prod(SHAPE)).reshape(SHAPE) + n) % 5).astype(np.float32)  # every class, float as shipped


def make_case(folder: Path, n: int) -> None:
    """Flair, T1c (z-scored, constant nonzero background), OTMultiClass (float32 0..4), brainmask."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(n)
    mask = np.zeros(SHAPE, np.float32)
    mask[1:-1, 2:-2, 2:-2] = 0.99999997
    for f in CHANNEL_FILES:
        _write(np.where(mask > 0.5, rng.normal(size=SHAPE), -3.5).astype(np.float32), folder / f)
    _write(_label(n), folder / LABEL_FILE)
    _write(mask, folder / MASK_FILE)


def make_deepmedic(root: Path, splits=SPLITS) -> Path:
    for split, numbers in splits.items():
        for num in numbers:
            make_case(root / split / f"brats_2013_pat{num}_1", int(num))
    return root


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return make_deepmedic(tmp_path_factory.mktemp("deepmedic"))


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_layout_labels_and_split(src, tmp_path):
    out = convert_brats_deepmedic(src, raw_root=tmp_path)
    assert out == tmp_path / "Dataset115_BraTSDeepMedic"
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [
        "brats2013_pat0003_0000.nii.gz", "brats2013_pat0003_0001.nii.gz",
        "brats2013_pat0005_0000.nii.gz", "brats2013_pat0005_0001.nii.gz"]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["brats2013_pat0003.nii.gz",
                                                                      "brats2013_pat0005.nii.gz"]
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == ["brats2013_pat0001_0000.nii.gz",
                                                                     "brats2013_pat0001_0001.nii.gz"]
    assert [p.name for p in (out / "labelsTs").iterdir()] == ["brats2013_pat0001.nii.gz"]
    case = src / "train/brats_2013_pat0005_1"
    assert (out / "imagesTr/brats2013_pat0005_0001.nii.gz").read_bytes() == (case / CHANNEL_FILES[1]).read_bytes()
    label = sitk.ReadImage(str(out / "labelsTs/brats2013_pat0001.nii.gz"))
    assert label.GetPixelID() == sitk.sitkUInt8 and label.GetOrigin() == (0.0, -9.0, 0.0)
    assert np.array_equal(sitk.GetArrayFromImage(label), _label(1).astype(np.uint8))
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["channel_names"] == {"0": "FLAIR", "1": "T1c"} and ds["numTraining"] == 2
    assert ds["labels"] == {"background": 0, "necrosis": 1, "edema": 2, "non_enhancing": 3, "enhancing": 4}
    assert ds["file_ending"] == ".nii.gz" and "CC BY-NC-SA 3.0" in ds["licence"]
    assert json.loads((out / "splits_final.json").read_text()) == [{"train": ["brats2013_pat0005"],
                                                                    "val": ["brats2013_pat0003"]}]


def test_flat_folder_and_mask_background(src, tmp_path, monkeypatch):
    # nnU-Net's integrity check (a spawned worker: seconds) already runs in test_layout_labels_and_split
    monkeypatch.setattr("dataset_conversion.common.verify_integrity", lambda folder: None)
    assert main(["-i", str(src / "train"), "-o", str(tmp_path), "--flat", "--mask-background"]) == 0
    out = tmp_path / "Dataset115_BraTSDeepMedic"
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["brats2013_pat0005.nii.gz"]
    assert not (out / "imagesTs").exists() and not (out / "splits_final.json").exists()
    case = src / "train/brats_2013_pat0005_1"
    inside = _array(case / MASK_FILE) > 0.5
    flair = _array(out / "imagesTr/brats2013_pat0005_0000.nii.gz")
    assert flair.dtype == np.float32 and np.all(flair[~inside] == 0)
    assert np.array_equal(flair[inside], _array(case / CHANNEL_FILES[0])[inside])


_expect_error = partial(expect_conversion_error, convert_brats_deepmedic, main)


def test_missing_t1c(tmp_path, capsys):
    src = make_deepmedic(tmp_path / "src")
    bad = src / "test/brats_2013_pat0001_1" / CHANNEL_FILES[1]
    bad.unlink()
    assert str(bad) in _expect_error(tmp_path, src, "missing file", capsys)


def test_non_integer_label(tmp_path, capsys):
    src = make_deepmedic(tmp_path / "src")
    bad = src / "validation/brats_2013_pat0003_1" / LABEL_FILE
    label = _label(3)
    label[0, 0, 0] = 2.5
    _write(label, bad)
    assert str(bad) in _expect_error(tmp_path, src, "non-integer label values", capsys)


def test_label_out_of_range(tmp_path, capsys):
    src = make_deepmedic(tmp_path / "src")
    bad = src / "train/brats_2013_pat0005_1" / LABEL_FILE
    _write(np.full(SHAPE, 5, np.float32), bad)
    assert str(bad) in _expect_error(tmp_path, src, "unexpected label values", capsys)


def test_geometry_mismatch(tmp_path, capsys):
    src = make_deepmedic(tmp_path / "src")
    bad = src / "train/brats_2013_pat0005_1" / CHANNEL_FILES[0]
    _write(np.zeros(SHAPE, np.float32), bad, spacing=(1.0, 1.0, 2.0))
    assert str(bad) in _expect_error(tmp_path, src, "geometry mismatch", capsys)


def test_wrong_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "--flat" in _expect_error(tmp_path, tmp_path / "empty", "no train/, validation/ or test/", capsys)
