"""Evaluate a folder of predictions against a folder of references (thin-structure metrics).

Cases are matched by name: ``REF/CASE<ending>`` <-> ``PRED/CASE<ending>``, optional probabilities
``PRED/CASE.npz`` (nnU-Net ``--save_probabilities``) and FOV mask ``FOV/CASE<any ending>``. Every
input is checked before any metric is computed, so a bad folder fails fast.
"""
import logging
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from nnsam2.evaluation.files import (EvaluationInputError, check_complete_files, detect_file_ending,
                                     find_case_file, find_dataset_json,
                                     ignore_label_from_dataset_json, list_cases, read_fov,
                                     read_probabilities, read_segmentation)
from nnsam2.evaluation.thin_structures import case_metrics

logger = logging.getLogger(__name__)

MEAN_METRICS = ("dice", "sensitivity", "specificity", "accuracy", "auc", "cldice")


@dataclass
class CaseFiles:
    case: str
    reference: str
    prediction: str
    fov: Optional[str] = None
    probabilities: Optional[str] = None


def match_cases(ref_folder: str, pred_folder: str, fov_folder: Optional[str],
                file_ending: str) -> List[CaseFiles]:
    """One :class:`CaseFiles` per reference case; raises if a prediction or FOV mask is missing."""
    refs = list_cases(ref_folder, file_ending)
    if not refs:
        raise EvaluationInputError(f"no reference files ending in {file_ending} in {ref_folder}")
    if not os.path.isdir(pred_folder):
        raise EvaluationInputError(f"prediction folder not found: {pred_folder}")
    if fov_folder is not None and not os.path.isdir(fov_folder):
        raise EvaluationInputError(f"field-of-view folder not found: {fov_folder}")
    cases = []
    for case, ref in refs.items():
        pred = os.path.join(pred_folder, case + file_ending)
        if not os.path.isfile(pred):
            raise EvaluationInputError(f"missing prediction {pred} for reference {ref}")
        fov = find_case_file(fov_folder, case, file_ending) if fov_folder else None
        if fov_folder and fov is None:
            raise EvaluationInputError(f"missing field-of-view mask for case {case} in {fov_folder}")
        npz = os.path.join(pred_folder, case + ".npz")
        cases.append(CaseFiles(case, ref, pred, fov, npz if os.path.isfile(npz) else None))
    check_complete_files([p for c in cases for p in (c.reference, c.prediction)])
    extra = set(list_cases(pred_folder, file_ending)) - set(refs)
    if extra:
        logger.warning("%d prediction(s) in %s have no reference and are skipped: %s",
                       len(extra), pred_folder, ", ".join(sorted(extra)[:5]))
    return cases


def find_labels(cases: Sequence[CaseFiles], ignore_label: Optional[int] = None) -> List[int]:
    """All foreground labels (> 0, not the ignore label) found in the reference files."""
    found = set()
    for c in cases:
        found.update(np.unique(read_segmentation(c.reference)).tolist())
    return sorted(k for k in found if k > 0 and k != ignore_label)


def _load_case(c: CaseFiles, ignore_label: Optional[int]):
    """(ref, pred, probs or None, valid mask or None) with every shape checked."""
    ref, pred = read_segmentation(c.reference), read_segmentation(c.prediction)
    if pred.shape != ref.shape:
        raise EvaluationInputError(f"shape mismatch: prediction {c.prediction} {pred.shape} vs "
                                   f"reference {c.reference} {ref.shape}")
    valid = None
    if c.fov is not None:
        valid = read_fov(c.fov)
        if valid.shape != ref.shape:
            raise EvaluationInputError(f"field-of-view mask {c.fov} has shape {valid.shape}, "
                                       f"reference {c.reference} has {ref.shape}")
    if ignore_label is not None:
        valid = (ref != ignore_label) if valid is None else valid & (ref != ignore_label)
    probs = read_probabilities(c.probabilities) if c.probabilities else None
    if probs is not None and probs.shape[1:] != ref.shape:
        raise EvaluationInputError(f"probabilities {c.probabilities} have spatial shape "
                                   f"{probs.shape[1:]}, reference {c.reference} has {ref.shape}")
    return ref, pred, probs, valid


def _evaluate_case(c: CaseFiles, labels: Sequence[int], cldice_labels: Iterable[int],
                   cldice_per_slice: bool, ignore_label: Optional[int]) -> dict:
    ref, pred, probs, valid = _load_case(c, ignore_label)
    if probs is not None and probs.shape[0] <= max(labels):
        raise EvaluationInputError(f"probabilities {c.probabilities} have {probs.shape[0]} classes, "
                                   f"label {max(labels)} was requested")
    metrics = case_metrics(pred, ref, labels, probs, valid, cldice_labels, cldice_per_slice)
    return {"case": c.case, "reference_file": c.reference, "prediction_file": c.prediction,
            "fov_file": c.fov, "probabilities_file": c.probabilities,
            "metrics": {str(k): v for k, v in metrics.items()}}


def _nanmean(values: List[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _means(per_case: List[dict], labels: Sequence[int]) -> Dict[str, Dict[str, float]]:
    """Per label: mean over cases (NaN cases skipped) of each metric present."""
    means = {}
    for k in map(str, labels):
        rows = [c["metrics"][k] for c in per_case]
        means[k] = {m: _nanmean([r[m] for r in rows]) for m in MEAN_METRICS if m in rows[0]}
    return means


def evaluate_folders(ref_folder: str, pred_folder: str, fov_folder: Optional[str] = None,
                     labels: Optional[Sequence[int]] = None, file_ending: Optional[str] = None,
                     cldice: Union[bool, Iterable[int]] = False, cldice_per_slice: bool = True,
                     ignore_label: Union[int, str, None] = "auto") -> dict:
    """Per-case and mean Dice, sensitivity, specificity, accuracy, pixel AUC and clDice.

    Args:
        ref_folder: reference segmentations (e.g. ``nnUNet_raw/DatasetXXX/labelsTs``).
        pred_folder: predictions with the same case names (+ ``CASE.npz`` for the AUC).
        fov_folder: optional field-of-view masks (nonzero = inside), e.g. DRIVE's ``fovTs``.
        labels: labels to evaluate; default all foreground labels of the references.
        file_ending: e.g. '.nii.gz' or '.png'; default detected from ``ref_folder``.
        cldice: labels that also get clDice (Shit et al. 2021, https://arxiv.org/abs/2003.07562);
            True for all evaluated labels, False for none.
        cldice_per_slice: clDice skeletons per 2D slice (True) or in 3D (False).
        ignore_label: reference label whose pixels are excluded from every metric (and from the
            default labels); "auto" reads the ``"ignore"`` label of nnU-Net's dataset.json (next to
            or above ``ref_folder``, or in ``pred_folder``), None disables it.
    """
    if file_ending and not file_ending.startswith("."):
        file_ending = "." + file_ending
    file_ending = file_ending or detect_file_ending(ref_folder)
    cases = match_cases(ref_folder, pred_folder, fov_folder, file_ending)
    notes = []
    if ignore_label == "auto":
        ignore_label, notes = _auto_ignore_label(ref_folder, pred_folder)
    labels = sorted(int(k) for k in labels) if labels else find_labels(cases, ignore_label)
    if not labels:
        raise EvaluationInputError(f"no foreground labels to evaluate in {ref_folder}")
    cldice_labels = labels if cldice is True else sorted(int(k) for k in (cldice or ()))
    per_case = [_evaluate_case(c, labels, cldice_labels, cldice_per_slice, ignore_label)
                for c in cases]
    return {"reference_folder": ref_folder, "prediction_folder": pred_folder,
            "fov_folder": fov_folder, "file_ending": file_ending, "labels": labels,
            "cldice_labels": cldice_labels, "ignore_label": ignore_label,
            "notes": notes + _notes(cases, pred_folder, fov_folder), "metric_per_case": per_case,
            "mean": _means(per_case, labels)}


def _auto_ignore_label(ref_folder: str, pred_folder: str):
    """(ignore label or None, notes) from the dataset.json found by :func:`find_dataset_json`."""
    path = find_dataset_json(ref_folder, pred_folder)
    label = ignore_label_from_dataset_json(path) if path else None
    if label is None:
        return None, []
    logger.info("ignore label %d from %s", label, path)
    return label, [f"pixels with the ignore label {label} (from {path}) are excluded"]


def _notes(cases: Sequence[CaseFiles], pred_folder: str, fov_folder: Optional[str]) -> List[str]:
    notes = []
    missing = [c.case for c in cases if c.probabilities is None]
    if missing:
        notes.append(f"auc is null for {len(missing)} of {len(cases)} case(s) without CASE.npz "
                     f"probabilities in {pred_folder} (predict with --save_probabilities): "
                     f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    notes.append("metrics restricted to the field of view (nonzero mask pixels) from " + fov_folder
                 if fov_folder else "no field-of-view mask: metrics over all pixels")
    notes.append("means skip cases where a metric is undefined (0/0, e.g. an empty reference)")
    return notes
