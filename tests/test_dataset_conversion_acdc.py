"""ACDC converter on a tiny replica of the original layout (patient folders, _gt files, Info.cfg, _4d files)."""
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_conversion.Dataset027_ACDC import convert_acdc, main
from dataset_conversion.common import ConversionError
from tests.helpers.converters import expect_conversion_error

SPACING = (1.5625, 1.5625, 10.0)  # (x, y, z) as SimpleITK reports it
DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
GROUPS = ["DCM", "DCM", "DCM", "NOR", "NOR", "NOR", "RV", "RV", "RV", "MINF"]


def _write(arr: np.ndarray, path: Path, spacing=SPACING) -> None:
    img = sitk.GetImageFromArray(arr)  # (z, y, x)
    img.SetSpacing(spacing)
    img.SetDirection(DIRECTION)
    img.SetOrigin((10.0, -5.0, 3.0))
    sitk.WriteImage(img, str(path), True)


def make_acdc(root: Path, patients=range(1, 11), testing=(101,), seed=0) -> Path:
    """training/patientNNN/{patientNNN_frame01,_frame12}[_gt].nii.gz, Info.cfg, patientNNN_4d.nii.gz."""
    rng = np.random.default_rng(seed)
    for split, numbers in (("training", patients), ("testing", testing)):
        for n in numbers:
            d = root / split / f"patient{n:03d}"
            d.mkdir(parents=True)
            (d / "Info.cfg").write_text(f"ED: 1\nES: 12\nGroup: {GROUPS[(n - 1) % 10]}\nHeight: 180\n")
            _write(rng.integers(0, 500, (3, 8, 10)).astype(np.int16), d / f"patient{n:03d}_4d.nii.gz")
            for frame in (1, 12):
                stem = d / f"patient{n:03d}_frame{frame:02d}"
                _write(rng.integers(0, 500, (3, 8, 10)).astype(np.int16), Path(f"{stem}.nii.gz"))
                _write(rng.integers(0, 4, (3, 8, 10)).astype(np.uint8), Path(f"{stem}_gt.nii.gz"))
    return root


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    src = make_acdc(tmp_path_factory.mktemp("acdc"))
    out = convert_acdc(src, raw_root=tmp_path_factory.mktemp("raw"))
    return src, out


def test_layout_and_dataset_json(converted):
    src, out = converted
    assert out.name == "Dataset027_ACDC"
    ids = [f"patient{n:03d}_frame{f:02d}" for n in range(1, 11) for f in (1, 12)]
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"{i}_0000.nii.gz" for i in ids]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [f"{i}.nii.gz" for i in ids]
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == ["patient101_frame01_0000.nii.gz",
                                                                    "patient101_frame12_0000.nii.gz"]
    assert (out / "labelsTs" / "patient101_frame12.nii.gz").is_file()
    assert not any("4d" in p.name for p in out.rglob("*"))
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "RV": 1, "MLV": 2, "LVC": 3} and ds["numTraining"] == 20
    assert ds["file_ending"] == ".nii.gz" and len(ds["channel_names"]) == 1


def test_images_and_labels_keep_geometry_and_values(converted):
    src, out = converted
    for case in ("patient003_frame01", "patient010_frame12"):
        patient = case.split("_")[0]
        assert (out / "imagesTr" / f"{case}_0000.nii.gz").read_bytes() == \
            (src / "training" / patient / f"{case}.nii.gz").read_bytes()
        label = sitk.ReadImage(str(out / "labelsTr" / f"{case}.nii.gz"))
        original = sitk.ReadImage(str(src / "training" / patient / f"{case}_gt.nii.gz"))
        assert np.allclose(label.GetSpacing(), SPACING) and np.allclose(label.GetDirection(), DIRECTION)
        assert np.array_equal(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(original))


def test_split_groups_patients_and_stratifies(converted):
    _, out = converted
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 5
    all_val = sum((s["val"] for s in splits), [])
    assert sorted(all_val) == sorted(p.name[:-7] for p in (out / "labelsTr").iterdir())
    for s in splits:
        val_patients = {c.split("_")[0] for c in s["val"]}
        assert not val_patients & {c.split("_")[0] for c in s["train"]}  # both frames in the same fold
        assert all(f"{p}_frame01" in s["val"] and f"{p}_frame12" in s["val"] for p in val_patients)
        assert len(val_patients) == 2
    # the three DCM patients (001-003) land in three different folds
    folds_of_dcm = {i for i, s in enumerate(splits) for p in ("patient001", "patient002", "patient003")
                    if f"{p}_frame01" in s["val"]}
    assert len(folds_of_dcm) == 3


def _expect_error(tmp_path, src, match, capsys):
    err = expect_conversion_error(convert_acdc, main, tmp_path, src, match, capsys)
    assert err.startswith("error:")
    return err


def test_missing_label(tmp_path, capsys):
    src = make_acdc(tmp_path / "src", patients=[1, 2], testing=[])
    gt = src / "training/patient002/patient002_frame12_gt.nii.gz"
    gt.unlink()
    assert str(gt) in _expect_error(tmp_path, src, "missing label", capsys)


def test_geometry_mismatch(tmp_path, capsys):
    src = make_acdc(tmp_path / "src", patients=[1, 2], testing=[])
    gt = src / "training/patient001/patient001_frame01_gt.nii.gz"
    _write(np.zeros((3, 8, 10), np.uint8), gt, spacing=(1.0, 1.0, 5.0))
    assert str(gt) in _expect_error(tmp_path, src, "geometry mismatch", capsys)


def test_unexpected_label_values(tmp_path, capsys):
    src = make_acdc(tmp_path / "src", patients=[1, 2], testing=[])
    gt = src / "training/patient002/patient002_frame01_gt.nii.gz"
    _write(np.full((3, 8, 10), 4, np.uint8), gt)
    assert str(gt) in _expect_error(tmp_path, src, "unexpected label values", capsys)


def test_truncated_file(tmp_path, capsys):
    src = make_acdc(tmp_path / "src", patients=[1, 2], testing=[])
    image = src / "training/patient001/patient001_frame12.nii.gz"
    image.write_bytes(image.read_bytes()[:-20])  # SimpleITK alone would read this silently
    assert str(image) in _expect_error(tmp_path, src, "cannot read", capsys)


def test_wrong_folder(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    _expect_error(tmp_path, tmp_path / "src", "not a folder", capsys)


def test_too_few_patients_for_five_folds(tmp_path):
    src = make_acdc(tmp_path / "src", patients=[1, 2], testing=[])
    with pytest.raises(ConversionError, match="at least 5"):
        convert_acdc(src, raw_root=tmp_path / "raw")
    assert list((tmp_path / "raw").iterdir()) == []


def test_existing_target_needs_overwrite(converted, capsys):
    src, out = converted
    assert main(["-i", str(src), "-o", str(out.parent)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (out / "dataset.json").is_file()
