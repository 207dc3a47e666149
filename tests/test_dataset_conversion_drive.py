"""DRIVE converter on a tiny replica: RGB TIFs, GIF vessel and FOV masks, ignore label outside the FOV."""
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_conversion.Dataset114_DRIVE import convert_drive, main
from tests.helpers.converters import expect_conversion_error

H, W = 30, 28
SPLITS = {"training": ["21", "22", "23"], "test": ["01", "02"]}


def _fov() -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (yy - H / 2) ** 2 + (xx - W / 2) ** 2 < (W / 2 - 1) ** 2  # (H, W) circle


def _vessels(num: str) -> np.ndarray:
    v = np.zeros((H, W), bool)
    v[:, int(num) % 7 + 5] = True  # a vertical vessel, leaving the FOV at top and bottom
    v[12, :] = True
    return v


def make_drive(root: Path, test_manual: bool = True) -> Path:
    """{training,test}/images/NN_split.tif, 1st_manual/NN_manual1.gif, mask/NN_split_mask.gif."""
    rng = np.random.default_rng(0)
    for split, numbers in SPLITS.items():
        for sub in ("images", "1st_manual", "mask"):
            (root / split / sub).mkdir(parents=True)
        for num in numbers:
            rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(root / split / "images" / f"{num}_{split}.tif")
            Image.fromarray((_fov() * 255).astype(np.uint8)).save(root / split / "mask" / f"{num}_{split}_mask.gif")
            if split == "training" or test_manual:
                manual = (_vessels(num) * 255).astype(np.uint8)
                Image.fromarray(manual).save(root / split / "1st_manual" / f"{num}_manual1.gif")
    return root


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    src = make_drive(tmp_path_factory.mktemp("drive") / "DRIVE")
    return src, convert_drive(src, raw_root=src.parent / "raw")


def test_layout_and_json(drive):
    _, out = drive
    assert out.name == "Dataset114_DRIVE"
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == \
        [f"drive_{n}_{c:04d}.png" for n in SPLITS["training"] for c in range(3)]
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["drive_01.png", "drive_02.png"]
    assert sorted(p.name for p in (out / "fovTr").iterdir()) == [f"drive_{n}.png" for n in SPLITS["training"]]
    assert sorted(p.name for p in (out / "fovTs").iterdir()) == ["drive_01.png", "drive_02.png"]
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "vessel": 1, "ignore": 2}
    assert max(ds["labels"].values()) == ds["labels"]["ignore"]  # nnU-Net: ignore is the highest label
    assert ds["numTraining"] == 3 and ds["file_ending"] == ".png" and len(ds["channel_names"]) == 3


def test_channels_labels_and_fov(drive):
    src, out = drive
    for split, suffix in (("training", "Tr"), ("test", "Ts")):
        for num in SPLITS[split]:
            rgb = np.asarray(Image.open(src / split / "images" / f"{num}_{split}.tif"))
            for c in range(3):
                assert np.array_equal(_png(out / f"images{suffix}" / f"drive_{num}_{c:04d}.png"), rgb[..., c])
            label = _png(out / f"labels{suffix}" / f"drive_{num}.png")
            fov = _png(out / f"fov{suffix}" / f"drive_{num}.png")
            assert np.array_equal(fov, _fov().astype(np.uint8))
            assert np.all(label[~_fov()] == 2)  # ignore outside the FOV, vessels there included
            assert np.array_equal(label[_fov()], _vessels(num)[_fov()].astype(np.uint8))


def test_test_split_without_manual(tmp_path):
    src = make_drive(tmp_path / "DRIVE", test_manual=False)
    (src / "test" / "1st_manual").rmdir()
    out = convert_drive(src, raw_root=tmp_path / "raw")
    assert not (out / "labelsTs").exists()
    assert len(list((out / "imagesTs").iterdir())) == 6 and len(list((out / "fovTs").iterdir())) == 2


_expect_error = partial(expect_conversion_error, convert_drive, main)


def test_missing_manual(tmp_path, capsys):
    src = make_drive(tmp_path / "DRIVE")
    (src / "training" / "1st_manual" / "22_manual1.gif").unlink()
    assert "22_manual1.gif" in _expect_error(tmp_path, src, "missing label", capsys)


def test_bad_fov_values(tmp_path, capsys):
    src = make_drive(tmp_path / "DRIVE")
    bad = src / "training" / "mask" / "23_training_mask.gif"
    Image.fromarray((_fov() * 128).astype(np.uint8)).save(bad)
    assert str(bad) in _expect_error(tmp_path, src, "unexpected label values", capsys)


def test_geometry_mismatch(tmp_path, capsys):
    src = make_drive(tmp_path / "DRIVE")
    bad = src / "test" / "1st_manual" / "02_manual1.gif"
    Image.fromarray(np.zeros((H, W + 2), np.uint8)).save(bad)
    assert str(bad) in _expect_error(tmp_path, src, "geometry mismatch", capsys)


def test_truncated_tif(tmp_path, capsys):
    src = make_drive(tmp_path / "DRIVE")
    bad = src / "training" / "images" / "21_training.tif"
    bad.write_bytes(bad.read_bytes()[:500])
    assert str(bad) in _expect_error(tmp_path, src, "cannot read", capsys)


def test_wrong_folder_and_existing_target(tmp_path, drive, capsys):
    assert "training" in _expect_error(tmp_path, tmp_path, "not a folder", capsys)
    src, out = drive
    assert main(["-i", str(src), "-o", str(out.parent)]) == 1
    assert "already exists" in capsys.readouterr().err
