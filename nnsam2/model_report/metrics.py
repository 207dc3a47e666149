"""Validation metrics of a model folder, read from the files nnU-Net and nnsam2_evaluate wrote.

Per fold: ``fold_X/validation/summary.json`` (nnU-Net's ``compute_metrics_on_folder``: per-case
``metrics[label]`` with Dice, IoU, n_ref, ..., per-class ``mean``, ``foreground_mean``); the numbers
are shown as stored, never recomputed. Thin-structure metrics: ``summary_thin_structures.json``
(``nnsam2_evaluate``'s default name) in a fold's validation folder or a cross-validation folder.
"""
import glob
import math
import os
from typing import Dict, List

import numpy as np
from nnunetv2.evaluation.evaluate_predictions import label_or_region_to_key

from nnsam2.evaluation.summary_file import SUMMARY_FILE as THIN_SUMMARY_FILE
from nnsam2.model_report.layout import ModelFolder, read_json
from nnsam2.model_report.missing import Missing, collect


def foreground_classes(dataset_json: dict) -> Dict[str, str]:
    """{summary key: class name}: the keys nnU-Net's summary.json uses ("1", or "(1, 2)" for
    regions), for every foreground label of dataset.json."""
    classes = {}
    for name, value in dataset_json["labels"].items():
        if name == "ignore" or value in (0, [0]):
            continue
        classes[label_or_region_to_key(value if isinstance(value, int) else tuple(value))] = name
    return classes


def fold_summary(model: ModelFolder, fold: str):
    """The fold's validation summary, or Missing saying whether the fold or its validation is
    absent."""
    if not os.path.isdir(model.fold_folder(fold)):
        return Missing(f"fold {fold} has not been trained")
    path = os.path.join(model.validation_folder(fold), "summary.json")
    if not os.path.isfile(path):
        return Missing(f"fold {fold} has no validation/summary.json (training unfinished, or "
                       f"run with --val)")
    return collect(f"fold {fold} validation", lambda: read_json(path))


def case_name(entry: dict, file_ending: str) -> str:
    name = os.path.basename(entry["prediction_file"])
    return name[:-len(file_ending)] if name.endswith(file_ending) else name


def dice_of(metrics: dict, key: str) -> float:
    """Dice of a class as a float; NaN when undefined (the class in neither image) or absent."""
    value = metrics.get(key, {}).get("Dice")
    return math.nan if value is None else float(value)


def fold_rows(summaries: Dict[str, object], classes: Dict[str, str]) -> List[dict]:
    """One row per fold: mean Dice per class and over the foreground, or why it is missing."""
    rows = []
    for fold, summary in summaries.items():
        if isinstance(summary, Missing):
            rows.append({"fold": fold, "missing": summary})
            continue
        rows.append({"fold": fold, "cases": len(summary["metric_per_case"]),
                     "foreground": summary["foreground_mean"]["Dice"],
                     "dice": {k: dice_of(summary["mean"], k) for k in classes}})
    return rows


def mean_sd(values: List[float]) -> dict:
    """Mean and sample standard deviation (n - 1) over folds; sd is NaN for a single fold."""
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return {"n": 0, "mean": math.nan, "sd": math.nan}
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
    return {"n": len(finite), "mean": float(np.mean(finite)), "sd": sd}


def across_folds(rows: List[dict], classes: Dict[str, str]) -> dict:
    done = [r for r in rows if "missing" not in r]
    return {"foreground": mean_sd([r["foreground"] for r in done]),
            "dice": {k: mean_sd([r["dice"][k] for r in done]) for k in classes}}


def case_rows(summaries: Dict[str, object], classes: Dict[str, str],
              file_ending: str) -> List[dict]:
    """Every validation case of every fold, worst mean foreground Dice first.

    A class absent from both reference and prediction has Dice NaN in nnU-Net's summary; it does
    not count towards the mean. Cases without any defined Dice go last.
    """
    rows = []
    for fold, summary in summaries.items():
        if isinstance(summary, Missing):
            continue
        for entry in summary["metric_per_case"]:
            metrics = entry["metrics"]
            dice = {k: dice_of(metrics, k) for k in classes}
            defined = [v for v in dice.values() if not math.isnan(v)]
            rows.append({"fold": fold, "case": case_name(entry, file_ending), "dice": dice,
                         "n_ref": {k: metrics.get(k, {}).get("n_ref") for k in classes},
                         "mean": float(np.mean(defined)) if defined else math.nan,
                         "prediction_file": entry["prediction_file"],
                         "reference_file": entry.get("reference_file")})
    return sorted(rows, key=lambda r: (math.isnan(r["mean"]), r["mean"]))


def thin_structure_summaries(model: ModelFolder) -> List[dict]:
    """nnsam2_evaluate's summaries found in the model folder: {where, labels, metrics, mean}."""
    pattern_dirs = [os.path.join(model.path, "fold_*", "validation"),
                    os.path.join(model.path, "crossval_results_folds_*")]
    found = []
    for pattern in pattern_dirs:
        for path in sorted(glob.glob(os.path.join(pattern, THIN_SUMMARY_FILE))):
            summary = read_json(path)
            labels = [str(k) for k in summary["labels"]]
            metrics = sorted({m for k in labels for m in summary["mean"][k]})
            found.append({"where": os.path.relpath(path, model.path), "labels": labels,
                          "metrics": metrics, "mean": summary["mean"],
                          "cases": len(summary["metric_per_case"])})
    return found


def interactive_summaries(model: ModelFolder) -> List[dict]:
    """nnsam2_evaluate_interactive's results in the model folder (its default output
    ``fold_X/interactive``): {where, summary, table rows}."""
    from nnsam2.interactive.evaluate import SUMMARY
    found = []
    for path in sorted(glob.glob(os.path.join(model.path, "fold_*", "interactive", SUMMARY))):
        summary = read_json(path)
        found.append({"where": os.path.relpath(os.path.dirname(path), model.path),
                      "summary": summary, "classes": list(summary["dice_per_class"])})
    return found
