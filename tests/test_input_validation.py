"""Damaged inputs give one line per problem naming the file, before anything is written or loaded
(issue 11: raw data, prediction inputs, folds, output folder, SAM2 checkpoint, converter names)."""
import argparse
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from nnsam2.experiment_planning.plan_and_preprocess_api import _removed_if_interrupted
from nnsam2.cli.predict import run as predict
from nnsam2.inference.predict_api import check_folds, find_model_folder
from nnsam2.training.run_training import check_fold
from nnsam2.network.sam2_weights import CheckpointError, read_official_state_dict
from nnsam2.utils.nnunet_env import UsageError
from nnsam2.experiment_planning.raw_data_check import DataCheckError, check_raw_dataset

NAME = "Dataset980_Checks"
TRAINER_FOLDER = "SAM2DualAdapterTrainer__nnSAM2Plans__2d"
LABELS = {"background": 0, "organ": 1, "lesion": 2}


def write_image(path: Path, arr: np.ndarray, spacing=(1.0, 1.25), vector=False) -> None:
    """Write a (y, x) array (or (y, x, components) with ``vector``) in the format of the suffix."""
    img = sitk.GetImageFromArray(arr, isVector=vector)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path), True)


def make_dataset(root: Path, num_cases: int = 3, ending: str = ".nii.gz") -> Path:
    """A valid 2D dataset of tiny cases: one channel, labels 0-2."""
    folder = root / NAME
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(num_cases):
        image = rng.normal(size=(40, 48)).astype(np.float32)  # (y, x)
        label = (np.arange(40 * 48).reshape(40, 48) % 3).astype(np.uint8)
        write_image(folder / "imagesTr" / f"case_{i:03d}_0000{ending}", image)
        write_image(folder / "labelsTr" / f"case_{i:03d}{ending}", label)
    write_json(folder, channels={"0": "MR"}, num_training=num_cases, ending=ending)
    return folder


def write_json(folder: Path, channels, num_training, ending) -> None:
    (folder / "dataset.json").write_text(json.dumps(dict(
        channel_names=channels, labels=LABELS, numTraining=num_training, file_ending=ending)))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def problems_of(folder: Path, full: bool = False) -> list:
    with pytest.raises(DataCheckError) as info:
        check_raw_dataset(str(folder), full=full)
    return info.value.problems


def test_valid_datasets_pass(tmp_path):
    check_raw_dataset(str(make_dataset(tmp_path / "nii")), full=True)
    png = tmp_path / "png" / NAME  # RGB as three grey files, and as one RGB file
    for sub in ("imagesTr", "labelsTr"):
        (png / sub).mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 255, (30, 20, 3)).astype(np.uint8)  # (H, W, C)
    for c in range(3):
        Image.fromarray(rgb[..., c]).save(png / "imagesTr" / f"grey_{c:04d}.png")
    Image.fromarray(rgb).save(png / "imagesTr" / "rgb_0000.png")
    for case in ("grey", "rgb"):
        Image.fromarray((rgb[..., 0] > 128).astype(np.uint8)).save(png / "labelsTr" / f"{case}.png")
    write_json(png, channels={"0": "R", "1": "G", "2": "B"}, num_training=2, ending=".png")
    check_raw_dataset(str(png), full=True)


@pytest.mark.parametrize("damage, culprit, phrase", [
    (lambda f: truncate(f / "imagesTr" / "case_001_0000.nii.gz"), "imagesTr/case_001_0000.nii.gz",
     "truncated"),
    (lambda f: write_image(f / "labelsTr" / "case_000.nii.gz", np.zeros((40, 48), np.uint8),
                           spacing=(1.0, 2.0)), "labelsTr/case_000.nii.gz", "spacing"),
    (lambda f: write_image(f / "labelsTr" / "case_002.nii.gz", np.zeros((40, 40), np.uint8)),
     "labelsTr/case_002.nii.gz", "shape"),
    (lambda f: write_image(f / "imagesTr" / "case_001_0000.nii.gz",
                           np.zeros((40, 48, 2), np.float32), vector=True),
     "imagesTr/case_001_0000.nii.gz", "2 values per voxel"),
    (lambda f: os.rename(f / "imagesTr" / "case_001_0000.nii.gz",
                         f / "imagesTr" / "case_001.nii.gz"),
     "imagesTr/case_001.nii.gz", "rename it case_001_0000.nii.gz"),
    (lambda f: write_image(f / "imagesTr" / "case_001_0001.nii.gz", np.zeros((40, 48), np.float32)),
     "imagesTr/case_001_0001.nii.gz", "channel 0001"),
    (lambda f: write_json(f, {"0": "MR"}, 4, ".nii.gz"), "dataset.json", "numTraining is 4"),
    (lambda f: os.remove(f / "labelsTr" / "case_001.nii.gz"), "labelsTr/case_001.nii.gz",
     "missing label"),
    (lambda f: [write_image(f / sub / name, np.zeros((3, 40, 48), np.float32), (1.0, 1.25, 3.0))
                for sub, name in (("imagesTr", "case_002_0000.nii.gz"),
                                  ("labelsTr", "case_002.nii.gz"))],
     "imagesTr/case_002_0000.nii.gz", "3D image but most cases are 2D"),
], ids=["truncated", "spacing", "shape", "two-component", "no-suffix", "extra-channel",
        "numTraining", "missing-label", "dimensionality"])
def test_header_level_problems_name_the_file(tmp_path, damage, culprit, phrase):
    folder = make_dataset(tmp_path)
    damage(folder)
    problems = problems_of(folder)
    assert len(problems) == 1 and phrase in problems[0], problems
    assert problems[0].startswith(str(folder / culprit) + ":")


def test_truncated_files_and_all_problems_together(tmp_path):
    folder = make_dataset(tmp_path)
    truncate(folder / "imagesTr" / "case_000_0000.nii.gz")
    write_image(folder / "imagesTr" / "case_002_0001.nii.gz", np.zeros((40, 48), np.float32))
    assert len(problems_of(folder)) == 2  # collected, not the first only
    from nnsam2.utils.image_files import ImageFileError, check_complete
    grey = np.random.default_rng(1).integers(0, 255, (64, 64)).astype(np.uint8)  # (H, W)
    Image.fromarray(grey).save(tmp_path / "x.png")
    write_image(tmp_path / "x.nii", grey)
    for name in ("x.png", "x.nii"):
        check_complete(str(tmp_path / name))
        truncate(tmp_path / name)
        with pytest.raises(ImageFileError, match=f"{name}: file is truncated"):
            check_complete(str(tmp_path / name))


def test_voxel_level_problems_with_the_flag(tmp_path):
    folder = make_dataset(tmp_path, ending=".mha")  # SimpleITK reads NaN in NIfTI as 0
    bad_label = np.zeros((40, 48), np.uint8)
    bad_label[3, 4] = 7
    write_image(folder / "labelsTr" / "case_000.mha", bad_label)
    nan_image = np.zeros((40, 48), np.float32)
    nan_image[0, 0] = np.nan
    write_image(folder / "imagesTr" / "case_002_0000.mha", nan_image)
    assert problems_of(folder) == problems_of(folder, full=True)  # voxels always (issue 23)
    problems = problems_of(folder, full=True)
    assert problems == [
        f"{folder / 'labelsTr' / 'case_000.mha'}: label value(s) [7] not in dataset.json labels "
        f"[0, 1, 2]; fix the label file or declare the label",
        f"{folder / 'imagesTr' / 'case_002_0000.mha'}: contains NaN values; replace them (e.g. "
        f"with the image minimum)"]


def test_plan_and_preprocess_refuses_before_writing(tmp_path, nnunet_env):
    folder = make_dataset(nnunet_env["nnUNet_raw"], num_cases=5)
    truncate(folder / "imagesTr" / "case_003_0000.nii.gz")
    write_image(folder / "imagesTr" / "case_001_0001.nii.gz", np.zeros((40, 48), np.float32))
    proc = subprocess.run(["nnsam2_plan_and_preprocess", "-d", "980", "-np", "1", "-npfp", "1"],
                          env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "nnsam2_plan_and_preprocess: error: 2 problem(s)" in proc.stderr
    assert f"{folder / 'imagesTr' / 'case_003_0000.nii.gz'}: file is truncated" in proc.stderr
    assert f"{folder / 'imagesTr' / 'case_001_0001.nii.gz'}: channel 0001" in proc.stderr
    assert list(nnunet_env["nnUNet_preprocessed"].iterdir()) == []


def test_interrupted_preprocessing_leaves_no_partial_folder(tmp_path):
    partial = tmp_path / "nnSAM2Plans_2d"
    with pytest.raises(KeyboardInterrupt):
        with _removed_if_interrupted([str(partial)]):
            partial.mkdir()
            (partial / "case_000.b2nd").write_bytes(b"half")
            raise KeyboardInterrupt
    assert not partial.exists()


def test_fold_outside_the_split_is_refused(tmp_path):
    folder = tmp_path / NAME
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({"numTraining": 10}))
    with pytest.raises(UsageError, match="fold 7 does not exist: nnU-Net's split has 5 folds"):
        check_fold(str(folder), "7")
    check_fold(str(folder), "4")
    (folder / "splits_final.json").write_text(json.dumps([{"train": ["a"], "val": ["b"]}] * 3))
    with pytest.raises(UsageError, match="fold 3 is not in .*splits_final.json, which defines 3"):
        check_fold(str(folder), "3")
    check_fold(str(folder), "2")


@pytest.fixture
def model(nnunet_env, monkeypatch):
    """A fake trained model folder (plans, dataset.json, a garbage checkpoint that cannot load)."""
    monkeypatch.setattr("nnunetv2.utilities.file_path_utilities.nnUNet_results",
                        str(nnunet_env["nnUNet_results"]))
    monkeypatch.setenv("nnUNet_extTrainer", "")
    folder = nnunet_env["nnUNet_results"] / NAME / TRAINER_FOLDER
    (folder / "fold_0").mkdir(parents=True)
    (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"not a checkpoint")
    (folder / "plans.json").write_text(json.dumps({
        "configurations": {"2d": {}}, "image_reader_writer": "SimpleITKIO",
        "original_median_shape_after_transp": [1, 40, 48]}))
    write_json(folder, {"0": "MR"}, 3, ".nii.gz")
    return folder


def predict_args(inputs, output, **kw):
    """nnsam2_predict's parsed arguments (its parser's defaults), with ``kw`` replaced."""
    from nnsam2.cli.predict import parser
    args = parser().parse_args(["-i", str(inputs), "-o", str(output), "-d", NAME, "-f", "0"])
    return argparse.Namespace(**{**vars(args), **kw})


def model_folder_and_folds(args):
    """What nnsam2_predict checks of -d/-c/-tr/-p and -f before loading anything."""
    return check_folds(find_model_folder(args.d, args.c, args.tr, args.p), args.f, args.chk)


def test_predict_refuses_a_truncated_input_before_loading(model, tmp_path):
    inputs = make_dataset(tmp_path) / "imagesTr"
    truncate(inputs / "case_002_0000.nii.gz")
    with pytest.raises(DataCheckError) as info:
        predict(predict_args(inputs, tmp_path / "out"))
    assert info.value.problems == [f"{inputs / 'case_002_0000.nii.gz'}: file is truncated or "
                                   f"corrupt (the gzip stream ends early); copy or export it again"]
    assert not (tmp_path / "out").exists()


def test_predict_refuses_an_output_path_below_a_file_before_loading(model, tmp_path):
    inputs = make_dataset(tmp_path) / "imagesTr"
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match=r"^output folder .*file/out cannot be created: .*file is "
                                         r"a file, not a folder; choose another -o$"):
        predict(predict_args(inputs, tmp_path / "file" / "out"))


def test_predict_fold_and_configuration_errors_suggest_what_works(model, tmp_path):
    with pytest.raises(UsageError, match="^-f takes fold numbers or 'all', got abc$"):
        model_folder_and_folds(predict_args(tmp_path, tmp_path, f=["0", "abc"]))
    with pytest.raises(UsageError, match=r"no checkpoint_final.pth for fold\(s\) \[1\]; .* \(0\)"):
        model_folder_and_folds(predict_args(tmp_path, tmp_path, f=["1"]))
    with pytest.raises(UsageError, match=r"no fold has checkpoint_bset.pth; the folds hold "
                       r"checkpoint_final.pth: pass -chk with one of them$"):
        model_folder_and_folds(predict_args(tmp_path, tmp_path, chk="checkpoint_bset.pth"))
    with pytest.raises(UsageError) as info:
        model_folder_and_folds(predict_args(tmp_path, tmp_path, c="3d_fullres"))
    message = str(info.value)
    assert "'3d_fullres' is not in the plans nnSAM2Plans (planned: ['2d']); use -c 2d" in message
    assert "nnsam2_train" not in message and TRAINER_FOLDER in message


def test_random_bytes_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError) as info:
        read_official_state_dict(str(path))
    message = str(info.value)
    assert "random.pt" in message and "cannot be read (not a PyTorch file)" in message
    assert "\n" not in message and "file an issue" not in message


def test_kvasir_case_names_with_spaces_are_sanitised(tmp_path):
    from dataset_conversion.Dataset113_KvasirSEG import convert_kvasir
    from dataset_conversion.common import ConversionError
    src = tmp_path / "Kvasir-SEG"
    for sub in ("images", "masks"):
        (src / sub).mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 255, (32, 40, 3)).astype(np.uint8)  # (H, W, 3)
    mask = np.zeros((32, 40), np.uint8)
    mask[8:20, 10:30] = 255
    for name in ("polyp one", "polyp.two"):
        Image.fromarray(rgb).save(src / "images" / f"{name}.jpg")
        Image.fromarray(mask).save(src / "masks" / f"{name}.png")
    out = convert_kvasir(src, raw_root=tmp_path / "raw")
    names = sorted(p.name for p in (out / "labelsTr").iterdir())
    assert names == ["polyp_one.png", "polyp_two.png"]
    assert not [p for p in out.rglob("*") if " " in p.name]
    Image.fromarray(rgb).save(src / "images" / "polyp_one.jpg")
    with pytest.raises(ConversionError, match="polyp_one.jpg and .*polyp one.jpg both become case "
                                              "'polyp_one'"):
        convert_kvasir(src, raw_root=tmp_path / "raw2")
    assert not (tmp_path / "raw2").exists()
