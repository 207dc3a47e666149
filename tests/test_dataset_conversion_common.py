"""Shared converter machinery: output root, atomic write, --overwrite, integrity check, splits, CLIs."""
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_conversion.common import (ConversionError, atomic_dataset, block_splits, dataset_folder_name,
                                       get_raw_root, write_dataset_json, write_splits)
from dataset_conversion.demo_dataset import generate_demo_dataset, main as demo_main

REPO = Path(__file__).resolve().parents[1]
CLI_MODULES = ["Dataset027_ACDC", "Dataset111_Synapse", "Dataset112_ISBI2012", "Dataset113_KvasirSEG",
               "Dataset114_DRIVE", "demo_dataset"]


def _entries(raw: Path):
    return sorted(p.name for p in raw.iterdir()) if raw.exists() else []


def test_raw_root_from_env_and_argument(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "env"))
    assert get_raw_root() == tmp_path / "env"
    assert get_raw_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("nnUNet_raw")
    with pytest.raises(ConversionError, match="nnUNet_raw is not set"):
        get_raw_root()


def test_cli_without_nnunet_raw_fails_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    assert demo_main(["--num-train", "2", "--num-test", "0"]) == 1
    assert "error: nnUNet_raw is not set" in capsys.readouterr().err


def test_dataset_folder_name():
    assert dataset_folder_name(27, "ACDC") == "Dataset027_ACDC"
    with pytest.raises(ConversionError):
        dataset_folder_name(1000, "X")


def test_failure_leaves_nothing_behind(tmp_path):
    raw = tmp_path / "raw"
    with pytest.raises(ConversionError, match="boom"):
        with atomic_dataset(raw, "Dataset500_X") as tmp:
            (tmp / "imagesTr").mkdir()
            (tmp / "imagesTr" / "half_written_0000.nii.gz").write_bytes(b"x")
            raise ConversionError("boom")
    assert _entries(raw) == []


def test_failed_overwrite_keeps_the_old_dataset(tmp_path):
    old = tmp_path / "Dataset500_X"
    old.mkdir()
    (old / "dataset.json").write_text("{}")
    with pytest.raises(ConversionError):
        with atomic_dataset(tmp_path, "Dataset500_X", overwrite=True):
            raise ConversionError("bad input")
    assert _entries(tmp_path) == ["Dataset500_X"] and (old / "dataset.json").read_text() == "{}"


def test_integrity_check_failure_is_reported_and_cleaned_up(tmp_path):
    raw = tmp_path / "raw"
    with pytest.raises(ConversionError, match="integrity check failed"):
        with atomic_dataset(raw, "Dataset501_Bad") as tmp:
            (tmp / "imagesTr").mkdir()
            (tmp / "labelsTr").mkdir()
            write_dataset_json(tmp, {"0": "CT"}, {"background": 0, "a": 1}, 3, ".nii.gz")  # 3 cases, none there
    assert _entries(raw) == []


def test_existing_target_needs_overwrite(tmp_path, capsys):
    raw = tmp_path / "raw"
    out = generate_demo_dataset(raw, num_train=3, num_test=1)
    marker = out / "marker.txt"
    marker.write_text("keep me")
    with pytest.raises(ConversionError, match="already exists"):
        generate_demo_dataset(raw, num_train=3, num_test=1)
    assert demo_main(["-o", str(raw), "--num-train", "3", "--num-test", "1"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert marker.read_text() == "keep me"
    assert demo_main(["-o", str(raw), "--num-train", "3", "--num-test", "1", "--overwrite"]) == 0
    assert not marker.exists() and (out / "dataset.json").is_file()
    assert _entries(raw) == ["Dataset990_Demo2D"]


def test_same_id_other_name_is_refused(tmp_path):
    (tmp_path / "Dataset990_Other").mkdir()
    with pytest.raises(ConversionError, match="already used by"):
        generate_demo_dataset(tmp_path, num_train=2, num_test=0, overwrite=True)


def test_block_splits_are_contiguous_and_disjoint():
    ids = [f"c{i:02d}" for i in range(12)]
    splits = block_splits(ids, 5)
    assert len(splits) == 5
    vals = [s["val"] for s in splits]
    assert sum(vals, []) == ids  # every case validated once, in order
    for s in splits:
        assert sorted(s["train"] + s["val"]) == ids
        first = ids.index(s["val"][0])
        assert s["val"] == ids[first:first + len(s["val"])]


def test_write_splits_rejects_overlap(tmp_path):
    with pytest.raises(ConversionError, match="both train and val"):
        write_splits(tmp_path, [{"train": ["a", "b"], "val": ["b"]}])
    write_splits(tmp_path, [{"train": ["a"], "val": ["b"]}])
    assert json.loads((tmp_path / "splits_final.json").read_text()) == [{"train": ["a"], "val": ["b"]}]


@pytest.mark.parametrize("module", CLI_MODULES)
def test_every_cli_has_help(module, capsys):
    mod = importlib.import_module(f"dataset_conversion.{module}")
    with pytest.raises(SystemExit) as e:
        mod.main(["--help"])
    assert e.value.code == 0
    assert "--overwrite" in capsys.readouterr().out


def test_python_m_wrong_folder_exits_nonzero(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dataset_conversion.Dataset027_ACDC", "-i", str(tmp_path / "nope"),
                           "-o", str(tmp_path / "raw")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "error:" in proc.stderr and str(tmp_path / "nope" / "training") in proc.stderr
    assert not (tmp_path / "raw").exists()
