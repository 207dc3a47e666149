"""Output paths checked before work starts (nnsam2.utils.output_paths) in every command that writes,
truncated files refused by nnsam2_evaluate, and nnsam2_find_best_configuration's missing pieces."""
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnsam2.utils.nnunet_env import UsageError
from nnsam2.utils.output_paths import check_output_file, check_output_folder

NAME = "Dataset042_Outputs"
MODEL = "SAM2DualAdapterTrainer__nnSAM2Plans__2d"


def write_nifti(path: Path, array: np.ndarray) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path), True)  # (Y, X)
    return path


def labels(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((64, 64)) > 0.5).astype(np.uint8)  # (Y, X)


# ----------------------------------------------------------------------------- the helper

def test_output_folder_refusals_name_the_users_path(tmp_path):
    (tmp_path / "file").write_text("")
    (tmp_path / "inputs").mkdir()
    cases = [(tmp_path / "file", "exists and is not a folder"),
             (tmp_path / "file" / "out", r"cannot be created: .*file is a file, not a folder"),
             (tmp_path / "inputs", "is inside \\(or is\\) the input folder"),
             (tmp_path / "inputs" / "sub" / "out", "is inside \\(or is\\) the input folder")]
    for folder, phrase in cases:
        with pytest.raises(UsageError, match=f"^output folder {folder} {phrase}.*choose another -o$"):
            check_output_folder(str(folder), inputs=[str(tmp_path / "inputs")])
    assert check_output_folder(str(tmp_path / "new" / "out"), inputs=[str(tmp_path / "inputs")])
    assert not (tmp_path / "new").exists()


def test_output_file_refusals_name_the_users_path(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match=f"^output file {tmp_path} is a folder"):
        check_output_file(str(tmp_path))
    with pytest.raises(UsageError, match="cannot be created: .*file is a file, not a folder"):
        check_output_file(str(tmp_path / "file" / "x.json"))
    with pytest.raises(UsageError, match="^output file /proc/model.onnx cannot be written: no new "
                                         "file can be made in /proc"):
        check_output_file("/proc/model.onnx")
    assert check_output_file(str(tmp_path / "new" / "x.json"))


# ----------------------------------------------------------------------------- the commands

def test_predict_refuses_an_output_inside_or_equal_to_the_input(tmp_path):
    from nnsam2.inference.predict_api import predict
    model = tmp_path / MODEL
    (model / "fold_0").mkdir(parents=True)
    (model / "fold_0" / "checkpoint_final.pth").write_bytes(b"never loaded")
    (model / "plans.json").write_text(json.dumps({
        "configurations": {"2d": {}}, "image_reader_writer": "SimpleITKIO",
        "original_median_shape_after_transp": [1, 64, 64]}))
    (model / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MR"}, "labels": {"background": 0, "a": 1},
        "numTraining": 1, "file_ending": ".nii.gz"}))
    inputs = tmp_path / "imagesTs"
    inputs.mkdir()
    write_nifti(inputs / "case_000_0000.nii.gz", labels(0).astype(np.float32))
    for output in (inputs, inputs / "predictions"):
        with pytest.raises(UsageError, match=f"^output folder {output} is inside"):
            predict(str(inputs), str(output), str(model), folds=[0], device="cpu")


def test_report_refuses_an_existing_file_as_its_folder(tmp_path):
    from nnsam2.model_report.build import write_report
    (tmp_path / "report").write_text("")
    with pytest.raises(UsageError, match="report exists and is not a folder"):
        write_report(str(tmp_path / "no_model"), str(tmp_path / "report"))


@pytest.mark.parametrize("output, phrase", [
    ("/proc/model.onnx", "output file /proc/model.onnx cannot be written"),
    ("{tmp}/file/model.onnx", "output file {tmp}/file/model.onnx cannot be created"),
    ("{tmp}/folder.onnx", "output file {tmp}/folder.onnx is a folder"),
])
def test_export_refuses_unwritable_outputs_in_one_line(tmp_path, capsys, output, phrase):
    from nnsam2.cli.export import main
    (tmp_path / "file").write_text("")
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "no_model"), "-o", output.format(tmp=tmp_path)])
    err = capsys.readouterr().err
    assert info.value.code == 1 and f"nnsam2_export: error: {phrase.format(tmp=tmp_path)}" in err
    assert ".tmp" not in err and "Traceback" not in err


def evaluation_folders(tmp_path: Path):
    ref, pred = tmp_path / "labelsTs", tmp_path / "pred"
    ref.mkdir(), pred.mkdir()
    for i in range(2):
        write_nifti(ref / f"case_{i}.nii.gz", labels(i))
        write_nifti(pred / f"case_{i}.nii.gz", labels(i + 10))
    return ref, pred


def test_evaluate_refuses_an_output_below_a_file(tmp_path, capsys):
    from nnsam2.cli.evaluate import main
    ref, pred = evaluation_folders(tmp_path)
    (tmp_path / "file").write_text("")
    assert main(["-ref", str(ref), "-pred", str(pred), "-o", str(tmp_path / "file" / "s.json")]) == 1
    assert "cannot be created" in capsys.readouterr().err


@pytest.mark.parametrize("folder", ["labelsTs", "pred"])
def test_evaluate_refuses_a_truncated_file(tmp_path, capsys, folder):
    from nnsam2.cli.evaluate import main
    ref, pred = evaluation_folders(tmp_path)
    damaged = tmp_path / folder / "case_1.nii.gz"
    damaged.write_bytes(damaged.read_bytes()[:len(damaged.read_bytes()) // 2])
    assert main(["-ref", str(ref), "-pred", str(pred)]) == 1
    assert f"{damaged}: file is truncated or corrupt" in capsys.readouterr().err
    assert not (pred / "summary_thin_structures.json").exists()


@pytest.fixture
def results(tmp_path, monkeypatch):
    """nnUNet_results with one model whose fold 0 alone is validated."""
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / var / NAME).mkdir(parents=True)
        monkeypatch.setenv(var, str(tmp_path / var))
    monkeypatch.setenv("nnUNet_extTrainer", "")
    validation = tmp_path / "nnUNet_results" / NAME / MODEL / "fold_0" / "validation"
    validation.mkdir(parents=True)
    (validation / "summary.json").write_text("{}")
    return tmp_path


def test_find_best_names_missing_folds_and_unknown_trainers(results):
    from nnsam2.evaluation.find_best import find_best
    with pytest.raises(UsageError) as info:
        find_best(42, folds=[0, 1])
    message = str(info.value)
    assert "\n" not in message and "fold(s) 1 (validated: 0;" in message
    assert f"nnsam2_train {NAME} 2d FOLD -tr SAM2DualAdapterTrainer" in message
    with pytest.raises(UsageError, match=f"^unknown trainer 'NoSuchTrainer': .*{MODEL}$"):
        find_best(42, trainers=["NoSuchTrainer"], folds=[0])
