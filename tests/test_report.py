"""nnsam2_report on a model folder built from nnU-Net's own file formats: the demo dataset, plans
as nnsam2's planner writes them, validation summaries from nnU-Net's evaluation, checkpoints
holding nnU-Net's logging dict, find_best_configuration's JSON and instructions; no training."""
import base64
import hashlib
import importlib
import io
import json
import math
import multiprocessing.dummy
import re
import shutil
import types
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image
from scipy.ndimage import binary_erosion

from dataset_conversion.demo_dataset import generate_demo_dataset
from nnsam2.model_report.build import write_report
from nnsam2.model_report.layout import open_model_folder
from nnsam2.model_report.overlays import best_slice
from nnsam2.model_report.postprocessing import chosen_postprocessing

DATASET = "Dataset990_Demo2D"
MODEL = "SAM2DualAdapterTrainer__nnSAM2Plans__2d"
FOLD_CASES = {"0": ["demo_000", "demo_001", "demo_002"], "1": ["demo_003", "demo_004", "demo_005"]}
PP_STEP = "remove_all_but_largest_component_from_segmentation"


def _predict(reference: np.ndarray, case_index: int) -> np.ndarray:
    """Predictions of different quality: exact, organ eroded, lesion missed and organ shifted."""
    pred = reference.copy()
    if case_index % 3 == 1:
        pred[(reference == 1) & ~binary_erosion(reference == 1, iterations=2 + case_index)] = 0
    elif case_index % 3 == 2:
        pred[pred == 2] = 1
        pred = np.roll(pred, 3 + case_index, axis=-1)
    return pred


def _write_validation(raw: Path, gt: Path, fold_folder: Path, cases) -> None:
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    validation = fold_folder / "validation"
    validation.mkdir(parents=True)
    for case in cases:
        ref = sitk.ReadImage(str(raw / "labelsTr" / f"{case}.nii.gz"))
        pred = sitk.GetImageFromArray(_predict(sitk.GetArrayFromImage(ref), int(case[-3:])))
        pred.CopyInformation(ref)
        sitk.WriteImage(pred, str(validation / f"{case}.nii.gz"))
    compute_metrics_on_folder(str(gt), str(validation), str(validation / "summary.json"),
                              SimpleITKIO(), ".nii.gz", [1, 2], num_processes=1)


def _nnunet_log(epochs: int) -> dict:
    """nnU-Net's LocalLogger dict, with the numpy scalars it really holds."""
    rng = np.random.default_rng(epochs)
    dice = [np.float64(0.3 + 0.1 * e) for e in range(epochs)]
    return {"mean_fg_dice": dice, "ema_fg_dice": [np.float64(d * 0.9) for d in dice],
            "dice_per_class_or_region": [[np.float64(d), np.float64(d)] for d in dice],
            "train_losses": [np.float64(-0.1 * e + rng.random()) for e in range(epochs)],
            "val_losses": [np.float64(-0.1 * e) for e in range(epochs)],
            "lrs": [1e-3 * (1 - e / epochs) ** 0.9 for e in range(epochs)],
            "epoch_start_timestamps": [1000.0 + 10 * e for e in range(epochs)],
            "epoch_end_timestamps": [1008.5 + 10 * e for e in range(epochs)]}


def _write_checkpoint(path: Path, epochs: int) -> None:
    torch.save({"network_weights": {"stem.weight": torch.zeros(1)}, "optimizer_state": {},
                "grad_scaler_state": None, "logging": _nnunet_log(epochs),
                "_best_ema": np.float64(0.5),
                "current_epoch": epochs, "trainer_name": MODEL.split("__")[0],
                "init_args": {"configuration": "2d", "fold": 0, "device": torch.device("cpu")},
                "inference_allowed_mirroring_axes": (0, 1)}, path)


def _write_find_best(results: Path, model: Path) -> None:
    from nnunetv2.evaluation.find_best_configuration import print_inference_instructions
    crossval = model / "crossval_results_folds_0_1"
    crossval.mkdir()
    (crossval / "postprocessing.pkl").write_bytes(b"never unpickled")  # not a valid pickle
    (crossval / "postprocessing.json").write_text(json.dumps(
        {"postprocessing_fns": [PP_STEP],
         "postprocessing_kwargs": [{"labels_or_regions": [1, 2]}]}))
    elsewhere = f"/elsewhere/nnUNet_results/{DATASET}/{MODEL}/crossval_results_folds_0_1"
    info = {"folds": [0, 1], "dataset_name_or_id": DATASET, "all_results": {MODEL: 0.81},
            "best_model_or_ensemble": {
                "result_on_crossval_pre_pp": 0.81, "result_on_crossval_post_pp": 0.8234,
                "postprocessing_file": f"{elsewhere}/postprocessing.pkl",
                "some_plans_file": f"{elsewhere}/plans.json",
                "selected_model_or_models": [{"configuration": "2d",
                                              "plans_identifier": "nnSAM2Plans",
                                              "trainer": MODEL.split("__")[0]}]}}
    (results / "inference_information.json").write_text(json.dumps(info))
    print_inference_instructions(info, str(results / "inference_instructions.txt"))


def _plans() -> dict:
    """plans.json as nnSAM2Planner writes it for this dataset (planning is test_planner's job;
    fingerprinting and the memory probe would take most of this test's time)."""
    from nnsam2.experiment_planning.planner import sam2_architecture
    resample = "resample_data_or_seg_to_shape"
    config = {"data_identifier": "nnSAM2Plans_2d", "preprocessor_name": "DefaultPreprocessor",
              "batch_size": 2, "patch_size": [64, 64], "median_image_size_in_voxels": [135.0, 169.0],
              "spacing": [1.25, 1.0], "normalization_schemes": ["ZScoreNormalization"],
              "use_mask_for_norm": [False], "resampling_fn_data": resample,
              "resampling_fn_seg": resample, "resampling_fn_probabilities": resample,
              "architecture": sam2_architecture("toy"), "batch_dice": True,
              "sam2": {"size": "toy", "gpu_memory_target_gb": 8.0}}
    return {"dataset_name": DATASET, "plans_name": "nnSAM2Plans", "configurations": {"2d": config},
            "original_median_spacing_after_transp": [999.0, 1.25, 1.0],
            "original_median_shape_after_transp": [1, 135, 169],
            "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2],
            "transpose_backward": [0, 1, 2], "experiment_planner_used": "nnSAM2Planner",
            "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {"0": {"mean": 124.9, "std": 32.1}}}


def _write_folds(model: Path, raw: Path, gt: Path, sam2_file: Path) -> None:
    for fold, cases in FOLD_CASES.items():
        _write_validation(raw, gt, model / f"fold_{fold}", cases)
        _write_checkpoint(model / f"fold_{fold}" / "checkpoint_final.pth", 5)
    (model / "fold_2").mkdir()
    _write_checkpoint(model / "fold_2" / "checkpoint_latest.pth", 2)
    init = {"0": {"mode": "random", "train_all": True},
            "1": {"mode": "checkpoint", "checkpoint": str(sam2_file)}}
    for fold, record in init.items():
        (model / f"fold_{fold}" / "sam2_init.json").write_text(json.dumps(record))


def _write_thin_summary(ref: Path, raw: Path, validation: Path) -> None:
    """nnsam2_evaluate's summary of fold 0, where the report looks for it."""
    from nnsam2.evaluation import evaluate_folders, write_json_atomic
    ref.mkdir()
    for case in FOLD_CASES["0"]:
        shutil.copy(raw / "labelsTr" / f"{case}.nii.gz", ref)
    write_json_atomic(evaluate_folders(str(ref), str(validation), cldice=True),
                      str(validation / "summary_thin_structures.json"))


def _threads_for_nnunet_pools(mp: pytest.MonkeyPatch) -> None:
    """nnU-Net's integrity check and evaluation each spawn a worker pool, and every spawned
    worker imports torch (seconds each); threads do the same work in this test."""
    threads = types.SimpleNamespace(get_context=lambda method: multiprocessing.dummy)
    for module in ("nnunetv2.evaluation.evaluate_predictions",
                   "nnunetv2.experiment_planning.verify_dataset_integrity"):
        mp.setattr(importlib.import_module(module), "multiprocessing", threads)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """Folds 0 and 1 validated, fold 2 still training (latest checkpoint only), folds 3-4 not
    started; fold 0 from random weights (--train-all), fold 1 from a SAM2 checkpoint file."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        _threads_for_nnunet_pools(mp)
        for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            (root / var).mkdir()
            mp.setenv(var, str(root / var))
        raw = generate_demo_dataset(root / "nnUNet_raw", dataset_id=990, dim=2, num_train=6,
                                    num_test=0)
        results = root / "nnUNet_results" / DATASET
        model = results / MODEL
        model.mkdir(parents=True)
        preprocessed = root / "nnUNet_preprocessed" / DATASET
        (model / "plans.json").write_text(json.dumps(_plans()))
        shutil.copy(raw / "dataset.json", model / "dataset.json")
        shutil.copytree(raw / "labelsTr", preprocessed / "gt_segmentations")  # as nnU-Net does
        sam2_file = root / "sam2.1_hiera_toy.pt"
        sam2_file.write_bytes(b"stand-in for an official SAM2 checkpoint")
        _write_folds(model, raw, preprocessed / "gt_segmentations", sam2_file)
        _write_thin_summary(root / "thin_ref", raw, model / "fold_0" / "validation")
        _write_find_best(results, model)
        report = write_report(str(model), str(root / "out"))
        yield {"root": root, "model": model, "raw": raw, "sam2_file": sam2_file,
               "html": Path(report).read_text(encoding="utf-8"), "report": Path(report)}


class _Cells(HTMLParser):
    """Text of every table cell, keyed by (row id, data-key); and every img src."""

    def __init__(self):
        super().__init__()
        self.cells, self.images, self._row, self._key, self._text = {}, [], None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self._row = attrs.get("id")
        elif tag == "td" and attrs.get("data-key"):
            self._key, self._text = attrs["data-key"], ""
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "td" and self._key is not None:
            self.cells[(self._row, self._key)] = self._text.strip()
            self._key = None

    def handle_data(self, data):
        if self._key is not None:
            self._text += data


def _parse(html: str) -> _Cells:
    parser = _Cells()
    parser.feed(html)
    return parser


def _summary(model: Path, fold: str) -> dict:
    return json.loads((model / f"fold_{fold}" / "validation" / "summary.json").read_text())


def test_fold_numbers_equal_the_summary_files(model_folder):
    cells = _parse(model_folder["html"]).cells
    per_fold = {f: _summary(model_folder["model"], f) for f in FOLD_CASES}
    for fold, summary in per_fold.items():
        assert cells[(f"fold-{fold}", "foreground")] == f"{summary['foreground_mean']['Dice']:.4f}"
        for key in ("1", "2"):
            assert cells[(f"fold-{fold}", key)] == f"{summary['mean'][key]['Dice']:.4f}"
    for key, values in (("foreground", [s["foreground_mean"]["Dice"] for s in per_fold.values()]),
                        ("1", [s["mean"]["1"]["Dice"] for s in per_fold.values()])):
        expected = f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"
        assert cells[("fold-mean", key)] == expected
    assert len({s["foreground_mean"]["Dice"] for s in per_fold.values()}) == 2  # sd is not 0


def test_case_table_equals_the_summary_files_worst_first(model_folder):
    cells = _parse(model_folder["html"]).cells
    for fold in FOLD_CASES:
        for entry in _summary(model_folder["model"], fold)["metric_per_case"]:
            row = f"case-{fold}-{Path(entry['prediction_file']).name[:-len('.nii.gz')]}"
            for key in ("1", "2"):
                dice = entry["metrics"][key]["Dice"]
                assert cells[(row, key)] == ("n/a" if math.isnan(dice) else f"{dice:.4f}")
                assert cells[(row, f"n_ref-{key}")] == f"{entry['metrics'][key]['n_ref']:,}"
    means = [float(v) for (row, key), v in cells.items()
             if row and row.startswith("case-") and key == "mean"]
    assert len(means) == 6 and means == sorted(means) and means[0] < 0.9 < means[-1]


def test_every_image_decodes(model_folder):
    images = _parse(model_folder["html"]).images
    assert len(images) == 3 + 2 * 3  # curves of folds 0-2; worst/median/best of 2 classes
    for src in images:
        if src.startswith("data:image/png;base64,"):
            data = base64.b64decode(src.split(",", 1)[1], validate=True)
        else:  # a relative link must point to a file next to the report
            data = (model_folder["report"].parent / src).read_bytes()
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.width > 100 and image.height > 100


def test_missing_folds_and_validation_show_not_available(model_folder):
    html = model_folder["html"]
    fold_rows = dict(re.findall(r'<tr id="fold-(\d)">(.*?)</tr>', html, re.S))
    assert "not available (fold 2 has no validation/summary.json" in fold_rows["2"]
    for fold in ("3", "4"):
        assert "not available (fold " + fold + " has not been trained)" in fold_rows[fold]
    assert "not available" not in fold_rows["0"] + fold_rows["1"]
    overlays = html.split('id="overlays"')[1].split('id="postprocessing"')[0]
    assert "not available" not in overlays


def test_model_card_postprocessing_and_thin_structures(model_folder):
    from nnsam2.network import build_network, parameter_report
    from nnsam2.training.trainers.method_trainers import SAM2DualAdapterTrainer
    html = model_folder["html"]
    net = build_network(1, 3, size="toy", adapter=SAM2DualAdapterTrainer.adapter_cfg())
    total = parameter_report(net)["all"]["total"]
    # fold 0 trained everything (--train-all) but the prompt encoder, which only gives no_mask_embed
    frozen = sum(p.numel() for n, p in net.named_parameters()
                 if n.startswith("sam_prompt_encoder.") and "no_mask_embed" not in n)
    all_row = re.search(r'<td class="text">all</td><td>([\d,]+)</td><td>([\d,]+)</td>', html)
    assert all_row.groups() == (f"{total:,}", f"{total - frozen:,}") and frozen > 0
    assert hashlib.sha256(model_folder["sam2_file"].read_bytes()).hexdigest() in html
    assert "RANDOM INITIALISATION" in html
    pp = html.split('id="postprocessing"')[1].split('id="thin"')[0]
    assert f"{PP_STEP}(labels_or_regions=[1, 2])" in pp and "0.8234" in pp
    assert "nnUNetv2_apply_postprocessing" in pp  # inference_instructions.txt
    thin = json.loads((model_folder["model"] / "fold_0" / "validation" /
                       "summary_thin_structures.json").read_text())
    assert f"{thin['mean']['1']['cldice']:.4f}" in html.split('id="thin"')[1]


def test_not_a_model_folder_is_one_line(tmp_path, capsys):
    from nnsam2.cli.report import main
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.count("\n") == 1
    assert err.startswith("nnsam2_report: error:") and "not an nnU-Net model folder" in err
    assert not (tmp_path / "r").exists()


def test_no_model_selection_is_not_available(tmp_path):
    model = tmp_path / DATASET / MODEL
    model.mkdir(parents=True)
    for name in ("plans.json", "dataset.json"):
        (model / name).write_text("{}")
    chosen = chosen_postprocessing(open_model_folder(str(model)))
    assert str(chosen).startswith("not available (find_best_configuration has not been run")


def test_failed_write_keeps_the_previous_report(monkeypatch, tmp_path):
    from nnsam2.model_report import build
    out = tmp_path / "report"
    out.mkdir()
    (out / "index.html").write_text("good report")
    def fail(*args):  # after the new report is written to its temporary file
        raise OSError("disk full")
    monkeypatch.setattr(build, "collect_report", lambda folder, allow_pickle=None: {})
    monkeypatch.setattr(build, "render_html", lambda report: "new report")
    monkeypatch.setattr(build.os, "chmod", fail)
    with pytest.raises(OSError, match="disk full"):
        build.write_report("model folder", str(out))
    assert (out / "index.html").read_text() == "good report" and len(list(out.iterdir())) == 1


def test_3d_slice_is_the_largest_reference_area():
    reference = np.zeros((5, 8, 8), bool)
    reference[1, :2, :2] = reference[3, :4, :4] = True
    prediction = np.zeros_like(reference)
    prediction[4] = True
    assert best_slice(reference, prediction) == 3
    assert best_slice(np.zeros_like(reference), prediction) == 4
    assert best_slice(np.zeros_like(reference), np.zeros_like(reference)) == 2
