"""``nnsam2_export``'s work: one fold of a trained model folder to ONNX, checked with ONNX
Runtime, plus its JSON sidecar (``model.onnx`` -> ``model.json``)."""
import json
import os
from typing import Optional

from nnsam2.export.model_folder import configuration_name, load_inference_network, resolve_fold
from nnsam2.export.onnx_graph import check_onnx, export_onnx, require_onnx
from nnsam2.export.sidecar import build_sidecar
from nnsam2.utils.nnunet_env import UsageError
from nnsam2.utils.atomic import atomic_path
from nnsam2.utils.output_paths import check_output_file

HP_UNSUPPORTED = (
    "this model's High-Performance adapters use torchvision's deform_conv2d, which has no ONNX "
    "export (torchvision registers no ONNX symbolic for it). Lightweight (SAM2DualAdapterTrainer_LW*), "
    "LoRA (SAM2LoRATrainer) and vanilla models export, and HP models whose adapters use nnsam2's "
    "pure-PyTorch deformable convolution")


class ExportCheckError(RuntimeError):
    """ONNX Runtime's output differs from PyTorch's beyond the tolerance (a bug: report it)."""


def sidecar_path(onnx_path: str) -> str:
    return os.path.splitext(onnx_path)[0] + ".json"


def export_error(error: Exception) -> Exception:
    """A user-facing error for what cannot be exported; other failures stay as they are."""
    if "deform_conv2d" in str(error):
        return UsageError(f"{HP_UNSUPPORTED} ({type(error).__name__}: "
                          f"{str(error).splitlines()[0]})")
    return error


def _check_or_raise(net, path: str, shapes) -> dict:
    check = check_onnx(net, path, shapes)
    if not check["passed"]:
        problem = check["error"] or (f"ONNX Runtime and PyTorch differ by "
                                     f"{check['max_abs_difference']:.3g} > {check['tolerance']:g}")
        raise ExportCheckError(f"the exported graph fails its check on inputs {check['shapes']}: "
                               f"{problem}; nothing was written (an nnsam2 bug: please report it)")
    return check


def export_model_folder(folder: str, output: str, fold: Optional[str] = None,
                        checkpoint_name: str = "checkpoint_final.pth") -> dict:
    """Export ``folder``'s fold to ``output`` (``.onnx``) and write the sidecar next to it.

    The graph is checked against PyTorch (batch 1 at the plans' patch size, batch 3 at another
    size) before it is moved into place. Returns the sidecar (with the check's result).
    """
    require_onnx()  # before anything slow
    if not output.endswith(".onnx"):
        raise UsageError(f"-o {output}: the file name must end in .onnx (the sidecar "
                         f"{os.path.basename(sidecar_path(output))} is written next to it)")
    check_output_file(output)
    check_output_file(sidecar_path(output))
    fold = resolve_fold(folder, fold, checkpoint_name)
    net, predictor = load_inference_network(folder, fold, checkpoint_name)
    meta = build_sidecar(folder, predictor.plans_manager, predictor.dataset_json,
                         configuration=configuration_name(predictor), fold=fold,
                         checkpoint_name=checkpoint_name, trainer_name=predictor.trainer_name,
                         network_config=net.config)
    channels = len(meta["input"]["channels"])
    with atomic_path(output) as tmp:
        try:
            height, width = export_onnx(net, tmp, channels)
        except Exception as e:
            raise export_error(e) from e
        shapes = [(1, channels, *meta["preprocessing"]["patch_size"]), (3, channels, width, height)]
        meta["check"] = _check_or_raise(net, tmp, shapes)
    meta["onnx_file"] = os.path.basename(output)
    with atomic_path(sidecar_path(output)) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
    return meta
