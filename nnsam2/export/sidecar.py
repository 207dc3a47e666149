"""The JSON sidecar of an exported network: what nnU-Net does before and after the network.

nnU-Net's maintainers declined ONNX export because a bare network loses the preprocessing. The
sidecar records it from the model folder's ``plans.json`` and ``dataset.json`` (and the
postprocessing that ``find_best_configuration`` chose, read from its JSON files only), so that a
deployment without Python-side nnU-Net can reproduce it.
"""
import glob
import json
import logging
import os
from typing import List, Optional

from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnsam2.network.sam2_net import SIZE_MULTIPLE

logger = logging.getLogger(__name__)

FORMAT = "nnsam2-onnx-sidecar"
VERSION = 1
# nnU-Net's normalisation schemes; those not listed take no parameters from the plans
CT_SCHEME = "CTNormalization"
PER_IMAGE = {
    "ZScoreNormalization": "per image and channel: (x - mean(x)) / max(std(x), 1e-8); with "
                           "use_mask_for_norm only inside the nonzero mask, 0 outside",
    "RescaleTo01Normalization": "per image and channel: (x - min(x)) / max(max(x) - min(x), 1e-8)",
    "RGBTo01Normalization": "x / 255",
    "NoNormalization": "x as float32",
}


def normalization(plans: dict, configuration: dict, channel_names: dict) -> List[dict]:
    """One entry per input channel, in channel order: nnU-Net's scheme and its parameters."""
    schemes, masked = configuration["normalization_schemes"], configuration["use_mask_for_norm"]
    intensity = plans.get("foreground_intensity_properties_per_channel", {})
    entries = []
    for c, (scheme, use_mask) in enumerate(zip(schemes, masked)):
        entry = {"channel": c, "channel_name": channel_names[str(c)], "scheme": scheme,
                 "use_mask_for_norm": bool(use_mask)}
        if scheme == CT_SCHEME:  # dataset-wide foreground statistics from the fingerprint
            props = intensity[str(c)]
            entry.update(lower_bound=props["percentile_00_5"], upper_bound=props["percentile_99_5"],
                         mean=props["mean"], std=props["std"],
                         formula="(clip(x, lower_bound, upper_bound) - mean) / max(std, 1e-8)")
        else:
            entry["formula"] = PER_IMAGE.get(scheme, f"nnU-Net's {scheme} (custom scheme)")
        entries.append(entry)
    return entries


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        logger.warning("nnsam2_export: ignoring %s (%s)", path, e)
        return None


def _is_this_model(info: dict, folder: str) -> bool:
    """Whether find_best_configuration's choice is this model folder alone (not an ensemble)."""
    chosen = info.get("best_model_or_ensemble", {}).get("selected_model_or_models", [])
    if len(chosen) != 1:
        return False
    c = chosen[0]
    return os.path.basename(os.path.normpath(folder)) == \
        f"{c.get('trainer')}__{c.get('plans_identifier')}__{c.get('configuration')}"


def postprocessing(folder: str) -> Optional[dict]:
    """The postprocessing nnU-Net chose for this model, from ``postprocessing.json`` (never the
    pickle next to it: unpickling can run code), or None if none was determined."""
    info_file = os.path.join(os.path.dirname(os.path.normpath(folder)), "inference_information.json")
    info = _read_json(info_file) if os.path.isfile(info_file) else None
    candidates = []
    if info and _is_this_model(info, folder):
        pkl = info["best_model_or_ensemble"].get("postprocessing_file", "")
        candidates.append(os.path.splitext(pkl)[0] + ".json")
    candidates += sorted(glob.glob(os.path.join(folder, "crossval_results_folds_*",
                                                "postprocessing.json")))
    for path in candidates:
        pp = _read_json(path) if os.path.isfile(path) else None
        if pp is not None:
            return {"source": os.path.abspath(path),
                    "functions": pp.get("postprocessing_fns", []),
                    "kwargs": pp.get("postprocessing_kwargs", []),
                    "note": "nnU-Net's postprocessing functions (nnunetv2.postprocessing."
                            "remove_connected_components), applied to the segmentation in order"}
    return None


def build_sidecar(folder: str, plans: PlansManager, dataset_json: dict, *, configuration: str,
                  fold, checkpoint_name: str, trainer_name: str, network_config: dict) -> dict:
    """Everything a deployment needs besides the ONNX file (see documentation/usage.md)."""
    config = plans.get_configuration(configuration)
    labels = plans.get_label_manager(dataset_json)
    raw_config = plans.plans["configurations"][configuration]
    return {
        "format": FORMAT, "version": VERSION,
        "model": {"trainer": trainer_name, "plans": plans.plans_name, "configuration": configuration,
                  "dataset": plans.dataset_name, "fold": fold, "checkpoint": checkpoint_name,
                  "sam2_size": network_config.get("size"), "adapter": network_config.get("adapter"),
                  "model_folder": os.path.abspath(folder)},
        "input": {"name": "image", "layout": "(B, C, H, W)", "dtype": "float32",
                  "channels": [dataset_json["channel_names"][str(c)]
                               for c in range(network_config["num_input_channels"])],
                  "size_multiple": SIZE_MULTIPLE, "pad_value": 0.0,
                  "note": f"H and W must be multiples of {SIZE_MULTIPLE}: pad the normalised "
                          f"image with 0 (nnU-Net's padding), crop the output back"},
        "output": {"name": "logits", "layout": "(B, K, H, W)",
                   "num_classes": network_config["num_classes"],
                   "activation": "sigmoid" if labels.has_regions else "softmax",
                   "segmentation": "regions: sigmoid > 0.5 in regions_class_order" if
                   labels.has_regions else "argmax over K; channel k is label value k"},
        "preprocessing": {
            "spacing": list(config.spacing), "transpose_forward": plans.transpose_forward,
            "transpose_backward": plans.transpose_backward, "patch_size": list(config.patch_size),
            "normalization": normalization(plans.plans, raw_config,
                                           dataset_json["channel_names"]),
            "crop_to_nonzero": True,
            "resampling_data": {"fn": raw_config.get("resampling_fn_data"),
                                "kwargs": raw_config.get("resampling_fn_data_kwargs")},
            "resampling_probabilities": {"fn": raw_config.get("resampling_fn_probabilities"),
                                         "kwargs": raw_config.get(
                                             "resampling_fn_probabilities_kwargs")},
            "image_reader_writer": plans.plans.get("image_reader_writer"),
            "file_ending": dataset_json.get("file_ending"),
            "dimensionality": "2d: one slice (C, H, W) at a time; 3D images slice by slice along "
                              "the first axis after transpose_forward",
        },
        "labels": dataset_json["labels"],
        "regions_class_order": dataset_json.get("regions_class_order"),
        "postprocessing": postprocessing(folder),
    }
