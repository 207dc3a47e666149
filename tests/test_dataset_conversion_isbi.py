"""ISBI 2012 converter on tiny replicas of both layouts (challenge TIFF stacks, per-slice PNGs)."""
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from dataset_conversion.Dataset112_ISBI2012 import convert_isbi2012, main
from tests.helpers.converters import expect_conversion_error


def _stacks(n=12, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 24, 20), dtype=np.uint8)  # (Z, H, W)
    labels = np.where(rng.random((n, 24, 20)) < 0.25, 0, 255).astype(np.uint8)  # 0 membrane, 255 cell
    return images, labels


def make_tiff_layout(root: Path, n=12) -> Path:
    images, labels = _stacks(n)
    root.mkdir(parents=True)
    for name, stack in (("train-volume", images), ("train-labels", labels), ("test-volume", images[:3] // 2)):
        tifffile.imwrite(root / f"{name}.tif", stack, photometric="minisblack")  # one page per slice
    return root


def make_png_layout(root: Path, n=12) -> Path:
    images, labels = _stacks(n)
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True)
    for z in range(n):
        Image.fromarray(images[z]).save(root / "images" / f"{z}.png")
        Image.fromarray(labels[z]).save(root / "labels" / f"{z}.png")
    return root


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def tiff_converted(tmp_path_factory):
    src = make_tiff_layout(tmp_path_factory.mktemp("isbi") / "tif")
    return convert_isbi2012(src, raw_root=tmp_path_factory.mktemp("raw"))


def test_tiff_layout(tiff_converted):
    out = tiff_converted
    images, labels = _stacks()
    assert out.name == "Dataset112_ISBI2012"
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"isbi_{z:02d}_0000.png" for z in range(12)]
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == [f"isbi_test_{z:02d}_0000.png" for z in range(3)]
    for z in (0, 7, 11):
        assert np.array_equal(_png(out / "imagesTr" / f"isbi_{z:02d}_0000.png"), images[z])
        label = _png(out / "labelsTr" / f"isbi_{z:02d}.png")
        assert label.dtype == np.uint8 and set(np.unique(label)) == {0, 1}
        assert np.array_equal(label == 1, labels[z] == 0)  # membrane (0) -> foreground 1
    assert np.array_equal(_png(out / "imagesTs" / "isbi_test_01_0000.png"), images[1] // 2)
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "membrane": 1} and ds["file_ending"] == ".png"
    assert ds["numTraining"] == 12 and ds["channel_names"] == {"0": "EM"}


def test_split_is_contiguous_blocks(tiff_converted):
    splits = json.loads((tiff_converted / "splits_final.json").read_text())
    assert [s["val"] for s in splits] == [[f"isbi_{z:02d}" for z in range(a, b)]
                                          for a, b in ((0, 2), (2, 5), (5, 7), (7, 10), (10, 12))]


def test_png_layout_with_holdout(tmp_path):
    src = make_png_layout(tmp_path / "png")
    out = convert_isbi2012(src, raw_root=tmp_path / "raw", holdout_last=2)
    images, labels = _stacks()
    assert len(list((out / "imagesTr").iterdir())) == 10
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["isbi_10.png", "isbi_11.png"]
    assert np.array_equal(_png(out / "imagesTs" / "isbi_10_0000.png"), images[10])  # numeric, not "10" < "2"
    assert np.array_equal(_png(out / "labelsTs" / "isbi_11.png") == 1, labels[11] == 0)
    splits = json.loads((out / "splits_final.json").read_text())
    assert sum((s["val"] for s in splits), []) == [f"isbi_{z:02d}" for z in range(10)]


_expect_error = partial(expect_conversion_error, convert_isbi2012, main)


def test_unexpected_label_values(tmp_path, capsys):
    src = make_png_layout(tmp_path / "png")
    Image.fromarray(np.full((24, 20), 128, np.uint8)).save(src / "labels" / "3.png")
    assert str(src / "labels" / "3.png") in _expect_error(tmp_path, src, "unexpected label values", capsys)


def test_missing_label(tmp_path, capsys):
    src = make_png_layout(tmp_path / "png")
    (src / "labels" / "5.png").unlink()
    assert str(src / "images" / "5.png") in _expect_error(tmp_path, src, "missing label", capsys)


def test_geometry_mismatch(tmp_path, capsys):
    src = make_tiff_layout(tmp_path / "tif")
    tifffile.imwrite(src / "train-labels.tif", np.zeros((12, 24, 21), np.uint8), photometric="minisblack")
    assert "train-labels.tif" in _expect_error(tmp_path, src, "geometry mismatch", capsys)


@pytest.mark.parametrize("name", ["train-volume.tif", "test-volume.tif"])
def test_truncated_tiff(tmp_path, capsys, name):
    src = make_tiff_layout(tmp_path / "tif")
    data = (src / name).read_bytes()
    (src / name).write_bytes(data[:len(data) // 2])
    assert str(src / name) in _expect_error(tmp_path, src, "cannot read", capsys)


def test_rgb_tiff_is_refused(tmp_path, capsys):
    src = make_tiff_layout(tmp_path / "tif")
    tifffile.imwrite(src / "train-volume.tif", np.zeros((24, 20, 3), np.uint8), photometric="rgb")
    assert "grayscale" in _expect_error(tmp_path, src, "expected a stack", capsys)


def test_truncated_png(tmp_path, capsys):
    src = make_png_layout(tmp_path / "png")
    data = (src / "images" / "4.png").read_bytes()
    (src / "images" / "4.png").write_bytes(data[:len(data) // 2])
    assert str(src / "images" / "4.png") in _expect_error(tmp_path, src, "cannot read", capsys)


def test_wrong_folder_and_existing_target(tmp_path, tiff_converted, capsys):
    (tmp_path / "empty").mkdir()
    _expect_error(tmp_path, tmp_path / "empty", "wrong -i folder", capsys)
    src = make_tiff_layout(tmp_path / "tif")
    assert main(["-i", str(src), "-o", str(tiff_converted.parent)]) == 1
    assert "already exists" in capsys.readouterr().err
