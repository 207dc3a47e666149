"""Voxel-level problems of raw data are refused always, before anything is written (issue 23):
label values outside dataset.json, NaN / Inf in images (with the reader nnU-Net will use),
a label off its image's origin or direction, a preprocessor name that is no preprocessor, and
truncated JSON files in nnUNet_preprocessed."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnsam2.experiment_planning.plan_and_preprocess_api import (check_json_files,
                                                                 check_preprocessor,
                                                                 plan_and_preprocess)
from nnsam2.experiment_planning.raw_data_check import DataCheckError, check_raw_dataset
from nnsam2.utils.nnunet_env import UsageError

NAME = "Dataset981_Voxels"
LABELS = {"background": 0, "organ": 1, "lesion": 2}


def write(path: Path, arr: np.ndarray, origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0)) -> None:
    img = sitk.GetImageFromArray(arr)  # (y, x)
    img.SetSpacing((1.0, 1.25))
    img.SetOrigin(origin)
    img.SetDirection(direction)
    sitk.WriteImage(img, str(path), True)


def make_dataset(root: Path, ending: str = ".nii.gz", num_cases: int = 3) -> Path:
    """A valid 2D dataset of tiny cases: one channel, labels 0-2."""
    folder = root / NAME
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(num_cases):
        write(folder / "imagesTr" / f"case_{i:03d}_0000{ending}",
              rng.normal(size=(24, 32)).astype(np.float32))
        write(folder / "labelsTr" / f"case_{i:03d}{ending}",
              (np.arange(24 * 32).reshape(24, 32) % 3).astype(np.uint8))
    (folder / "dataset.json").write_text(json.dumps(dict(
        channel_names={"0": "MR"}, labels=LABELS, numTraining=num_cases, file_ending=ending)))
    return folder


def problems_of(folder: Path) -> list:
    with pytest.raises(DataCheckError) as info:
        check_raw_dataset(str(folder))  # no --verify_dataset_integrity
    return info.value.problems


def test_label_values_outside_dataset_json_without_the_flag(tmp_path):
    folder = make_dataset(tmp_path, ending=".mha")
    for i, value, dtype in ((0, 7, np.uint8), (1, 0.5, np.float32), (2, -1, np.int16)):
        label = np.zeros((24, 32), dtype)
        label[3, 4] = value
        write(folder / "labelsTr" / f"case_{i:03d}.mha", label)
    assert problems_of(folder) == [
        f"{folder / 'labelsTr' / f'case_{i:03d}.mha'}: label value(s) {bad} not in dataset.json "
        f"labels [0, 1, 2]; fix the label file or declare the label"
        for i, bad in ((0, [7]), (1, [0.5]), (2, [-1]))]


@pytest.mark.parametrize("ending", [".mha", ".nii.gz"])
def test_nan_and_inf_in_images(tmp_path, ending):
    folder = make_dataset(tmp_path, ending=ending)
    for i, value in ((0, np.nan), (2, np.inf)):
        image = np.zeros((24, 32), np.float32)
        image[0, 0] = value
        write(folder / "imagesTr" / f"case_{i:03d}_0000{ending}", image)
    problems = problems_of(folder)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{folder / 'imagesTr' / f'case_000_0000{ending}'}: contains NaN")
    assert problems[1].startswith(f"{folder / 'imagesTr' / f'case_002_0000{ending}'}: contains Inf")


@pytest.mark.parametrize("geometry, word", [(dict(origin=(5.0, 0.0)), "origin"),
                                            (dict(direction=(0.0, 1.0, 1.0, 0.0)), "direction")])
def test_label_off_its_image_geometry(tmp_path, geometry, word):
    folder = make_dataset(tmp_path, ending=".mha")
    write(folder / "labelsTr" / "case_001.mha", np.zeros((24, 32), np.uint8), **geometry)
    problems = problems_of(folder)
    assert len(problems) == 1 and problems[0].startswith(
        f"{folder / 'labelsTr' / 'case_001.mha'}: {word} "), problems
    assert f"of {folder / 'imagesTr' / 'case_001_0000.mha'}" in problems[0]


def test_cli_refuses_a_bad_label_in_one_line_and_writes_nothing(nnunet_env):
    folder = make_dataset(nnunet_env["nnUNet_raw"])
    label = np.zeros((24, 32), np.uint8)
    label[1, 1] = 7
    write(folder / "labelsTr" / "case_001.nii.gz", label)
    proc = subprocess.run(["nnsam2_plan_and_preprocess", "-d", "981", "-np", "1", "-npfp", "1"],
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])),
                          capture_output=True, text=True, timeout=300)  # this tree's nnsam2
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{folder / 'labelsTr' / 'case_001.nii.gz'}: label value(s) [7]" in proc.stderr
    assert list(nnunet_env["nnUNet_preprocessed"].iterdir()) == []


@pytest.mark.parametrize("name", ["join", "os", "DefaultPreprocessorX", "a.b", 3])
def test_preprocessor_name_must_be_a_preprocessor(name):
    with pytest.raises(UsageError, match="is not a preprocessor"):
        check_preprocessor(name, "-preprocessor_name")
    check_preprocessor("DefaultPreprocessor", "-preprocessor_name")


def test_arbitrary_preprocessor_is_refused_before_anything_is_written(nnunet_env):
    make_dataset(nnunet_env["nnUNet_raw"])
    with pytest.raises(UsageError, match="'join' is not a preprocessor"):
        plan_and_preprocess([981], preprocessor_name="join", num_processes=(1,),
                            num_processes_fingerprint=1, progress_bar=False)
    assert list(nnunet_env["nnUNet_preprocessed"].iterdir()) == []


@pytest.mark.parametrize("file", ["nnSAM2Plans.json", "dataset_fingerprint.json", "dataset.json"])
def test_truncated_json_names_the_file(tmp_path, file):
    (tmp_path / file).write_text('{"configurations": {"2d": ')
    with pytest.raises(UsageError, match=f"{tmp_path / file}: not valid JSON"):
        check_json_files(str(tmp_path), "nnSAM2Plans")
