"""Synapse/BTCV converter on a tiny RawData replica: 13 organs, the 8-organ TransUNet protocol, bad inputs."""
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_conversion.Dataset111_Synapse import SYNAPSE8_TEST, convert_synapse, main
from dataset_conversion.common import ConversionError
from tests.helpers.converters import expect_conversion_error

TRAIN = [f"{n:04d}" for n in list(range(1, 11)) + list(range(21, 41))]  # the 30 BTCV training numbers
SPACING = (0.8, 0.8, 3.0)


def _write(arr: np.ndarray, path: Path, spacing=SPACING) -> None:
    img = sitk.GetImageFromArray(arr)  # (z, y, x)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path), True)


def make_btcv(root: Path, numbers=TRAIN, testing=("0061",)) -> Path:
    """RawData/Training/{img,label}/{img,label}NNNN.nii.gz and RawData/Testing/img/imgNNNN.nii.gz."""
    rng = np.random.default_rng(0)
    raw = root / "RawData"
    for sub in ("Training/img", "Training/label", "Testing/img"):
        (raw / sub).mkdir(parents=True)
    for n in numbers:
        _write(rng.integers(-1000, 1000, (3, 6, 7)).astype(np.int16), raw / f"Training/img/img{n}.nii.gz")
        label = np.arange(3 * 6 * 7).reshape(3, 6, 7) % 14  # every organ 0..13
        _write(label.astype(np.uint8), raw / f"Training/label/label{n}.nii.gz")
    for n in testing:
        _write(rng.integers(-1000, 1000, (3, 6, 7)).astype(np.int16), raw / f"Testing/img/img{n}.nii.gz")
    return root


@pytest.fixture(scope="module")
def btcv(tmp_path_factory):
    return make_btcv(tmp_path_factory.mktemp("btcv"))


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return tmp_path_factory.mktemp("raw")


def _label(out: Path, case: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / f"{case}.nii.gz")))


def test_btcv13(btcv, raw):
    out = convert_synapse(btcv, raw_root=raw)
    assert out.name == "Dataset111_Synapse"
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"case{n}_0000.nii.gz" for n in TRAIN]
    assert [p.name for p in (out / "imagesTs").iterdir()] == ["case0061_0000.nii.gz"]
    assert (out / "imagesTr/case0021_0000.nii.gz").read_bytes() == \
        (btcv / "RawData/Training/img/img0021.nii.gz").read_bytes()
    assert np.array_equal(_label(out, "case0021"), np.arange(126).reshape(3, 6, 7) % 14)
    label = sitk.ReadImage(str(out / "labelsTr/case0021.nii.gz"))
    assert np.allclose(label.GetSpacing(), SPACING)
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["channel_names"] == {"0": "CT"} and ds["numTraining"] == 30
    assert len(ds["labels"]) == 14 and ds["labels"]["left_adrenal_gland"] == 13
    assert not (out / "splits_final.json").exists()  # nnU-Net makes its own 5 folds


def test_synapse8_protocol(btcv, raw):
    out = convert_synapse(btcv, raw_root=raw, dataset_id=211, protocol="synapse8")
    assert out.name == "Dataset211_Synapse8"
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["channel_names"] == {"0": "CT"}
    assert list(ds["labels"]) == ["background", "aorta", "gallbladder", "left_kidney", "right_kidney", "liver",
                                  "pancreas", "spleen", "stomach"]
    original = np.arange(126).reshape(3, 6, 7) % 14
    expected = np.zeros_like(original)
    for old, new in {8: 1, 4: 2, 3: 3, 2: 4, 6: 5, 11: 6, 1: 7, 7: 8}.items():
        expected[original == old] = new
    assert np.array_equal(_label(out, "case0002"), expected)
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 1 and len(splits[0]["train"]) == 18 and len(splits[0]["val"]) == 12
    assert sorted(splits[0]["val"]) == sorted(f"case{n}" for n in SYNAPSE8_TEST)
    assert "case0008" in splits[0]["val"] and "case0005" in splits[0]["train"]


def test_synapse8_needs_the_test_cases(tmp_path):
    src = make_btcv(tmp_path / "src", numbers=["0005", "0006"], testing=())
    with pytest.raises(ConversionError, match="needs test cases"):
        convert_synapse(src, raw_root=tmp_path / "raw", protocol="synapse8")
    assert list((tmp_path / "raw").iterdir()) == []


_expect_error = partial(expect_conversion_error, convert_synapse, main)


def test_missing_label(tmp_path, capsys):
    src = make_btcv(tmp_path / "src", numbers=["0001", "0002"])
    (src / "RawData/Training/label/label0002.nii.gz").unlink()
    assert "img0002.nii.gz" in _expect_error(tmp_path, src, "missing label", capsys)


def test_geometry_mismatch(tmp_path, capsys):
    src = make_btcv(tmp_path / "src", numbers=["0001", "0002"])
    bad = src / "RawData/Training/label/label0001.nii.gz"
    _write(np.zeros((4, 6, 7), np.uint8), bad)
    assert str(bad) in _expect_error(tmp_path, src, "geometry mismatch", capsys)


def test_unexpected_label_values(tmp_path, capsys):
    src = make_btcv(tmp_path / "src", numbers=["0001", "0002"])
    bad = src / "RawData/Training/label/label0002.nii.gz"
    _write(np.full((3, 6, 7), 14, np.uint8), bad)
    assert str(bad) in _expect_error(tmp_path, src, "unexpected label values", capsys)


def test_truncated_file(tmp_path, capsys):
    src = make_btcv(tmp_path / "src", numbers=["0001", "0002"])
    bad = src / "RawData/Training/img/img0002.nii.gz"
    bad.write_bytes(bad.read_bytes()[:-40])
    assert str(bad) in _expect_error(tmp_path, src, "cannot read", capsys)


def test_wrong_folder_and_existing_target(tmp_path, btcv, raw, capsys):
    assert "RawData/Training/img" in _expect_error(tmp_path, tmp_path, "not a folder", capsys)
    assert (raw / "Dataset111_Synapse").is_dir()  # made by test_btcv13
    assert main(["-i", str(btcv), "-o", str(raw)]) == 1
    assert "already exists" in capsys.readouterr().err
