"""Which validation cases to show per class, and the 2D slices to show of them.

Per class: the worst, median and best validation case by Dice (cases where the class is absent
from reference and prediction have no Dice and are skipped). Images and references come from the
raw dataset (``imagesTr``, ``labelsTr``), predictions from ``fold_X/validation``, all read with the
plans' image reader; of a 3D case the slice with the largest reference area of the class is shown.
"""
import glob
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
from nnunetv2.evaluation.evaluate_predictions import key_to_label_or_region

from nnsam2.model_report.layout import ModelFolder

RANKS = ("worst", "median", "best")


@dataclass
class CaseSlice:
    image: np.ndarray  # (H, W) grey or (H, W, 3) RGB, scaled to [0, 1]
    reference: np.ndarray  # (H, W) bool, the class
    prediction: np.ndarray  # (H, W) bool, the class
    slice_index: Optional[int]  # None for 2D cases
    aspect: float  # pixel height / width, from the spacing


def pick_cases(rows: List[dict], class_key: str) -> List[Tuple[str, dict]]:
    """[(rank, case row)] for the worst, median and best Dice of ``class_key`` (fewer when fewer
    cases have one; a case is shown once)."""
    scored = sorted((r for r in rows if not math.isnan(r["dice"][class_key])),
                    key=lambda r: r["dice"][class_key])
    if not scored:
        return []
    picks, seen = [], set()
    for rank, row in zip(RANKS, (scored[0], scored[len(scored) // 2], scored[-1])):
        if (row["fold"], row["case"]) not in seen:
            seen.add((row["fold"], row["case"]))
            picks.append((rank, row))
    return picks


def class_mask(seg: np.ndarray, class_key: str) -> np.ndarray:
    label = key_to_label_or_region(class_key)
    return np.isin(seg, label) if isinstance(label, tuple) else seg == label


def case_files(model: ModelFolder, raw: Optional[str], row: dict, ending: str) -> Dict[str, object]:
    """{image: [channel files], reference: file, prediction: file}; FileNotFoundError if absent."""
    case = row["case"]
    if raw is None:
        raise FileNotFoundError(f"nnUNet_raw/{model.dataset} not found (set nnUNet_raw)")
    pattern = f"{glob.escape(case)}_[0-9][0-9][0-9][0-9]{ending}"
    images = sorted(glob.glob(os.path.join(raw, "imagesTr", pattern)))
    # labelsTr, else the copy nnU-Net evaluated against (gt_segmentations)
    reference = next((p for p in (os.path.join(raw, "labelsTr", case + ending),
                                  row.get("reference_file")) if p and os.path.isfile(p)), None)
    prediction = os.path.join(model.validation_folder(row["fold"]), case + ending)
    for what, found in (("image", images), ("reference", reference),
                        ("prediction", os.path.isfile(prediction))):
        if not found:
            raise FileNotFoundError(f"the {what} of case {case} was not found")
    return {"image": images, "reference": reference, "prediction": prediction}


def load_slice(reader, files: Dict[str, object], class_key: str) -> CaseSlice:
    """The slice of the case to show for ``class_key``."""
    image, props = reader.read_images(files["image"])  # (C, Z, Y, X)
    reference = class_mask(reader.read_seg(files["reference"])[0][0], class_key)  # (Z, Y, X)
    prediction = class_mask(reader.read_seg(files["prediction"])[0][0], class_key)
    z = best_slice(reference, prediction)
    spacing = props.get("spacing", (1.0, 1.0, 1.0))
    return CaseSlice(display_image(image[:, z]), reference[z], prediction[z],
                     z if image.shape[1] > 1 else None, float(spacing[-2]) / float(spacing[-1]))


def best_slice(reference: np.ndarray, prediction: np.ndarray) -> int:
    """Index along Z of the largest reference area; the largest predicted area when the
    reference is empty; the middle slice when both are."""
    for mask in (reference, prediction):
        area = mask.reshape(mask.shape[0], -1).sum(axis=1)  # (Z,)
        if area.max() > 0:
            return int(area.argmax())
    return reference.shape[0] // 2


def display_image(channels: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) RGB for three channels, else channel 0 (H, W); intensities
    windowed to their 1st-99th percentile."""
    image = np.moveaxis(channels, 0, -1) if channels.shape[0] == 3 else channels[0]  # (H, W[, 3])
    low, high = np.percentile(image, (1, 99))
    return np.clip((image - low) / max(high - low, 1e-8), 0.0, 1.0)
