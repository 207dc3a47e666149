"""Kvasir-SEG converter on a tiny replica: RGB JPEGs of varying size, JPEG (noisy) masks, fixed test list."""
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_conversion.Dataset113_KvasirSEG import convert_kvasir, main
from tests.helpers.converters import expect_conversion_error

NAMES = {"cju0qkwl35piu0993l0dewei2": (40, 48), "cju0roawvklrq0799vmjorwfv": (36, 52),
         "cju0s690hkp960855tjuaqvv0": (44, 44), "cju1amqw6p8pw0838d5mp6e4q": (32, 40)}


def _disk(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - h / 2) ** 2 + (xx - w / 2.5) ** 2 < (min(h, w) / 3) ** 2)


def make_kvasir(root: Path) -> Path:
    """images/<name>.jpg (RGB) and masks/<name>.jpg (a JPEG-compressed binary disk, saved as RGB)."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for name, (h, w) in NAMES.items():
        rgb = np.stack([np.linspace(0, 255, w)[None].repeat(h, 0), rng.integers(0, 256, (h, w)),
                        np.full((h, w), 90)], -1).astype(np.uint8)  # (H, W, 3)
        Image.fromarray(rgb).save(root / "images" / f"{name}.jpg", quality=90)
        mask = np.repeat(_disk(h, w)[..., None] * 255, 3, -1).astype(np.uint8)
        Image.fromarray(mask).save(root / "masks" / f"{name}.jpg", quality=75)
    (root / "kavsir_bboxes.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def kvasir(tmp_path_factory):
    src = make_kvasir(tmp_path_factory.mktemp("kvasir") / "Kvasir-SEG")
    test_list = src.parent / "test.txt"
    test_list.write_text("# fixed test set\ncju1amqw6p8pw0838d5mp6e4q.jpg\n\n")
    return src, convert_kvasir(src, raw_root=src.parent / "raw", test_list=test_list)


def test_layout_channels_and_json(kvasir):
    src, out = kvasir
    assert out.name == "Dataset113_KvasirSEG"
    train = sorted(NAMES)[:3]
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == \
        sorted(f"{n}_{c:04d}.png" for n in train for c in range(3))
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["cju1amqw6p8pw0838d5mp6e4q.png"]
    for name in NAMES:
        split = "Ts" if name.startswith("cju1") else "Tr"
        rgb = np.asarray(Image.open(src / "images" / f"{name}.jpg").convert("RGB"))
        for c in range(3):
            channel = np.asarray(Image.open(out / f"images{split}" / f"{name}_{c:04d}.png"))
            assert channel.shape == NAMES[name] and np.array_equal(channel, rgb[..., c])
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["channel_names"] == {"0": "R", "1": "G", "2": "B"} and ds["numTraining"] == 3
    assert ds["labels"] == {"background": 0, "polyp": 1} and ds["file_ending"] == ".png"


def test_jpeg_masks_are_thresholded(kvasir):
    src, out = kvasir
    for name, (h, w) in NAMES.items():
        split = "Ts" if name.startswith("cju1") else "Tr"
        raw_mask = np.asarray(Image.open(src / "masks" / f"{name}.jpg").convert("L"))
        assert len(np.unique(raw_mask)) > 2  # the replica really has JPEG noise
        label = np.asarray(Image.open(out / f"labels{split}" / f"{name}.png"))
        assert set(np.unique(label)) == {0, 1}
        assert np.array_equal(label, (raw_mask >= 128).astype(np.uint8))
        assert np.mean(label == _disk(h, w)) > 0.97


_expect_error = partial(expect_conversion_error, convert_kvasir, main)


def test_missing_mask(tmp_path, capsys):
    src = make_kvasir(tmp_path / "src")
    (src / "masks" / "cju0s690hkp960855tjuaqvv0.jpg").unlink()
    assert "images/cju0s690hkp960855tjuaqvv0.jpg" in _expect_error(tmp_path, src, "missing mask", capsys)


def test_size_mismatch(tmp_path, capsys):
    src = make_kvasir(tmp_path / "src")
    bad = src / "masks" / "cju0roawvklrq0799vmjorwfv.jpg"
    Image.fromarray(np.zeros((36, 50), np.uint8)).save(bad)
    assert str(bad) in _expect_error(tmp_path, src, "geometry mismatch", capsys)


def test_non_binary_mask(tmp_path, capsys):
    src = make_kvasir(tmp_path / "src")
    bad = src / "masks" / "cju0qkwl35piu0993l0dewei2.jpg"
    Image.fromarray(np.linspace(0, 255, 40 * 48).reshape(40, 48).astype(np.uint8)).save(bad)
    assert str(bad) in _expect_error(tmp_path, src, "unexpected label values", capsys)


def test_truncated_jpeg(tmp_path, capsys):
    src = make_kvasir(tmp_path / "src")
    bad = src / "images" / "cju0roawvklrq0799vmjorwfv.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    assert str(bad) in _expect_error(tmp_path, src, "cannot read", capsys)


def test_unknown_name_in_test_list(tmp_path, capsys):
    src = make_kvasir(tmp_path / "src")
    (tmp_path / "test.txt").write_text("no_such_image\n")
    test_list = str(tmp_path / "test.txt")
    err = _expect_error(tmp_path, src, "names images not in", capsys, ("--test-list", test_list), test_list=test_list)
    assert "no_such_image" in err


def test_wrong_folder_and_existing_target(tmp_path, kvasir, capsys):
    assert "images" in _expect_error(tmp_path, tmp_path, "not a folder", capsys)
    src, out = kvasir
    assert main(["-i", str(src), "-o", str(out.parent)]) == 1
    assert "already exists" in capsys.readouterr().err
