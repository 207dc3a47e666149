"""nnsam2_export: the fused network as ONNX (dynamic batch and size) matches PyTorch in ONNX
Runtime, the sidecar records nnU-Net's preprocessing, and usage.md's ONNX example runs."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

onnxruntime = pytest.importorskip(
    "onnxruntime", reason='ONNX export needs onnxruntime: pip install "nnsam2[onnx]"')
onnx = pytest.importorskip("onnx", reason='ONNX export needs onnx: pip install "nnsam2[onnx]"')

from nnunetv2.preprocessing.normalization.default_normalization_schemes import (  # noqa: E402
    ZScoreNormalization)
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager  # noqa: E402

from dataset_conversion.demo_dataset import SPACING, _make_case  # noqa: E402
from dataset_conversion.synthetic import write_nifti  # noqa: E402
from nnsam2.cli.export import main as export_main  # noqa: E402
from nnsam2.export import export_model_folder  # noqa: E402
from nnsam2.export.exporter import export_error  # noqa: E402
from nnsam2.export.model_folder import load_inference_network  # noqa: E402
from nnsam2.export.onnx_graph import TOLERANCE, export_onnx  # noqa: E402
from nnsam2.network import AdapterCfg, build_network, frozen_store  # noqa: E402
from nnsam2.training import checkpoint_files  # noqa: E402
from nnsam2.utils.nnunet_env import UsageError  # noqa: E402
from nnsam2.training.trainers.method_trainers import (SAM2DualAdapterTrainer, SAM2DualAdapterTrainer_LW,  # noqa: E402
                                    SAM2LoRATrainer)

USAGE = Path(__file__).parents[1] / "documentation" / "usage.md"
LABELS = {"background": 0, "organ": 1, "lesion": 2}
CT_PROPS = {"max": 900.0, "mean": 40.0, "median": 35.0, "min": -1000.0, "percentile_00_5": -160.0,
            "percentile_99_5": 240.0, "std": 80.0}


def plans(schemes):
    """nnSAM2Plans of a 2D dataset at the demo's spacing, toy SAM2, 64x64 patches."""
    config = {"data_identifier": "nnSAM2Plans_2d", "preprocessor_name": "DefaultPreprocessor",
              "batch_size": 2, "patch_size": [64, 64], "median_image_size_in_voxels": [128, 144],
              "spacing": [1.25, 1.0], "normalization_schemes": schemes,
              "use_mask_for_norm": [False] * len(schemes),
              "resampling_fn_data": "resample_data_or_seg_to_shape",
              "resampling_fn_seg": "resample_data_or_seg_to_shape",
              "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
              "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0,
                                            "force_separate_z": None},
              "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0,
                                           "force_separate_z": None},
              "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                     "force_separate_z": None},
              "architecture": {"network_class_name": "nnsam2.network.sam2_net.SAM2SegNet",
                               "arch_kwargs": {}, "_kw_requires_import": []},
              "sam2": {"size": "toy"}, "batch_dice": True}
    return {"dataset_name": "Dataset990_Demo2D", "plans_name": "nnSAM2Plans",
            "original_median_spacing_after_transp": [999.0, 1.25, 1.0],
            "original_median_shape_after_transp": [1, 128, 144], "image_reader_writer": "SimpleITKIO",
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "configurations": {"2d": config}, "experiment_planner_used": "nnSAM2Planner",
            "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {str(c): CT_PROPS
                                                            for c in range(len(schemes))}}


def trained_model_folder(root: Path, trainer, channels: dict, schemes, seed=0) -> Path:
    """A model folder as nnsam2_train leaves it (lean checkpoint, frozen store), written in-process
    with every trainable tensor and BatchNorm statistic randomised, so the export is tested on a
    network whose adapters, LoRA and class parts all matter."""
    folder = root / "Dataset990_Demo2D" / f"{trainer.__name__}__nnSAM2Plans__2d"
    (folder / "fold_0").mkdir(parents=True)
    plan = plans(schemes)
    dataset = {"channel_names": channels, "labels": LABELS, "numTraining": 6,
               "file_ending": ".nii.gz"}
    (folder / "plans.json").write_text(json.dumps(plan))
    (folder / "dataset.json").write_text(json.dumps(dataset))
    manager = PlansManager(plan)
    net = trainer.build_network_architecture(manager, manager.get_configuration("2d"),
                                             len(channels), len(LABELS), False)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
            if name.endswith(("running_var", "running_mean")) or tensor.requires_grad:
                tensor.copy_(torch.rand_like(tensor) + 0.5 if name.endswith("running_var")
                             else torch.randn_like(tensor) * 0.2)
    checkpoint = {"network_weights": frozen_store.split_state_dict(net, str(folder)),
                  "init_args": {"plans": plan, "configuration": "2d", "fold": 0,
                                "dataset_json": dataset},
                  "trainer_name": trainer.__name__, "current_epoch": 1,
                  "inference_allowed_mirroring_axes": (0, 1)}
    checkpoint_files.write(checkpoint, str(folder / "fold_0" / "checkpoint_final.pth"))
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An LW model (one MR channel, z-score) and a LoRA model (CT + a second z-scored channel,
    with a postprocessing.json as find_best_configuration leaves it): for each, the network as
    nnsam2_predict loads it, the sidecar and the ONNX file."""
    root = tmp_path_factory.mktemp("export")
    lw = trained_model_folder(root, SAM2DualAdapterTrainer_LW, {"0": "MRI"},
                              ["ZScoreNormalization"])
    lora = trained_model_folder(root, SAM2LoRATrainer, {"0": "CT", "1": "PET"},
                                ["CTNormalization", "ZScoreNormalization"], seed=1)
    crossval = lora / "crossval_results_folds_0_1_2_3_4"
    crossval.mkdir()
    (crossval / "postprocessing.json").write_text(json.dumps({
        "postprocessing_fns": ["remove_all_but_largest_component_from_segmentation"],
        "postprocessing_kwargs": [{"labels_or_regions": 1}]}))
    return {name: (load_inference_network(str(folder), 0, "checkpoint_final.pth")[0],
                   export_model_folder(str(folder), str(root / f"{name}.onnx")),
                   root / f"{name}.onnx") for name, folder in (("lw", lw), ("lora", lora))}


@pytest.mark.parametrize("name", ["lw", "lora"])
def test_onnx_runtime_matches_pytorch_at_other_batch_and_sizes(exported, name):
    net, meta, path = exported[name]
    channels = len(meta["input"]["channels"])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, height, width in ((1, 64, 96), (3, 128, 64)):  # neither is the traced size
        x = torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            expected = net(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        assert got.shape == (batch, 3, height, width)
        assert np.abs(got - expected).max() <= TOLERANCE
        assert expected.std() > 100 * TOLERANCE  # a tolerance the logits cannot pass trivially
    assert meta["check"]["passed"] and meta["check"]["max_abs_difference"] <= TOLERANCE
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*onnx.load(str(path)).graph.input, *onnx.load(str(path)).graph.output)]
    assert dims[0] == ["batch", channels, "height", "width"]
    assert [dims[1][i] for i in (0, 2, 3)] == ["batch", "height", "width"]


def test_sidecar_records_preprocessing_and_postprocessing(exported):
    lw_meta = json.loads(exported["lw"][2].with_suffix(".json").read_text())
    assert lw_meta == json.loads(json.dumps(exported["lw"][1]))
    assert lw_meta["model"]["trainer"] == "SAM2DualAdapterTrainer_LW"
    assert lw_meta["model"]["sam2_size"] == "toy" and lw_meta["model"]["fold"] == 0
    assert lw_meta["input"]["channels"] == ["MRI"] and lw_meta["input"]["size_multiple"] == 32
    pre = lw_meta["preprocessing"]
    assert pre["spacing"] == [1.25, 1.0] and pre["patch_size"] == [64, 64]
    assert pre["transpose_forward"] == [0, 1, 2] and pre["transpose_backward"] == [0, 1, 2]
    assert [n["scheme"] for n in pre["normalization"]] == ["ZScoreNormalization"]
    assert lw_meta["labels"] == LABELS and lw_meta["postprocessing"] is None

    lora_meta = exported["lora"][1]
    assert lora_meta["model"]["adapter"]["kind"] == "lora"
    ct, pet = lora_meta["preprocessing"]["normalization"]
    assert (ct["scheme"], ct["lower_bound"], ct["upper_bound"], ct["mean"], ct["std"]) == (
        "CTNormalization", -160.0, 240.0, 40.0, 80.0)
    assert pet["scheme"] == "ZScoreNormalization" and "mean" not in pet
    assert lora_meta["postprocessing"]["functions"] == [
        "remove_all_but_largest_component_from_segmentation"]


def usage_example() -> str:
    """The python block after the ``onnx-example`` marker in documentation/usage.md."""
    found = re.search(r"<!-- onnx-example -->\s*```python\n(.*?)```", USAGE.read_text(), re.S)
    assert found, "usage.md lost its ONNX Runtime example"
    return found.group(1)


def test_usage_example_runs_on_a_demo_image(exported, tmp_path, monkeypatch):
    net, meta, path = exported["lw"]
    image = tmp_path / "case_0000.nii.gz"
    write_nifti(_make_case(0, 1, 2)[0], SPACING[2], image)  # one demo case, in-process
    shutil.copy(path, tmp_path / "model.onnx")
    shutil.copy(path.with_suffix(".json"), tmp_path / "model.json")
    monkeypatch.chdir(tmp_path)
    exec(compile(usage_example(), str(USAGE), "exec"), {})
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "case.nii.gz")))

    # the same with nnU-Net's own normalisation and the PyTorch network
    pixels = sitk.GetArrayFromImage(sitk.ReadImage(str(image)))[None].astype(np.float32)
    x = ZScoreNormalization(False, {}).run(pixels)
    h, w = x.shape[1:]
    x = np.pad(x, ((0, 0), (0, -h % 32), (0, -w % 32)))[None]
    with torch.no_grad():
        expected = net(torch.from_numpy(x))[0, :, :h, :w].argmax(0).numpy()
    assert seg.shape == expected.shape == (h, w) and (h % 32 or w % 32)  # padding was needed
    assert (seg != expected).mean() < 1e-3  # ties aside, the same segmentation
    assert len(np.unique(seg)) > 1 and set(np.unique(seg)) <= set(LABELS.values())


def test_errors_are_one_line(exported, tmp_path, capsys, monkeypatch):
    folder = exported["lw"][1]["model"]["model_folder"]
    for argv, message in (
            ([str(tmp_path), "-o", "m.onnx"], "is not a trained model folder (no plans.json)"),
            ([folder, "-o", "m.onnx", "-f", "3"], "no fold_3/checkpoint_final.pth; trained "
                                                  "fold(s): 0"),
            ([folder, "-o", str(tmp_path / "m.json")], "must end in .onnx")):
        with pytest.raises(SystemExit) as info:
            export_main(argv)
        assert info.value.code == 1 and message in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(UsageError, match=r"onnxruntime is missing.*pip install \"nnsam2\[onnx\]\""):
        export_model_folder(folder, str(tmp_path / "m.onnx"))
    assert not (tmp_path / "m.onnx").exists()


def test_hp_model_exports_or_says_why_not(tmp_path):
    """HP adapters use a deformable convolution: exported if the op exports, else a clear error."""
    folder = trained_model_folder(tmp_path, SAM2DualAdapterTrainer, {"0": "MRI"},
                                  ["ZScoreNormalization"])
    try:
        meta = export_model_folder(str(folder), str(tmp_path / "hp.onnx"))
    except UsageError as e:
        assert "High-Performance adapters" in str(e) and "deform_conv2d" in str(e)
        assert not (tmp_path / "hp.onnx").exists() and not (tmp_path / "hp.json").exists()
    else:
        assert meta["check"]["passed"]


def test_torchvision_deform_conv_is_refused_with_its_reason(tmp_path):
    if "deform_impl" not in AdapterCfg.__dataclass_fields__:
        pytest.skip("HP adapters have only torchvision's deform_conv2d: see test above")
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="hp", deform_impl="torchvision"))
    with pytest.raises(Exception) as info:
        export_onnx(net.eval(), str(tmp_path / "hp.onnx"), 1)
    error = export_error(info.value)
    assert isinstance(error, UsageError) and "registers no ONNX symbolic" in str(error)
