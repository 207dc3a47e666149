"""What ``find_best_configuration`` chose for the dataset, from the text and JSON files it wrote.

nnU-Net writes ``inference_information.json`` and ``inference_instructions.txt`` into
``nnUNet_results/DatasetXXX`` and, next to the chosen ``postprocessing.pkl``, a
``postprocessing.json`` naming the same functions and arguments. The pickle is never opened:
unpickling a file from a shared model folder could run code.
"""
import json
import os
from typing import List

from nnsam2.model_report.layout import ModelFolder, read_json
from nnsam2.model_report.missing import Missing

INFORMATION = "inference_information.json"
INSTRUCTIONS = "inference_instructions.txt"


def chosen_postprocessing(model: ModelFolder):
    """{selected models, cross-validation Dice before/after postprocessing, steps, instructions},
    or Missing when find_best_configuration has not run for this dataset."""
    info_path = os.path.join(model.results_dataset, INFORMATION)
    if not os.path.isfile(info_path):
        return Missing(f"find_best_configuration has not been run for {model.dataset} "
                       f"(no {INFORMATION})")
    best = read_json(info_path)["best_model_or_ensemble"]
    selected = [f"{m['trainer']}__{m['plans_identifier']}__{m['configuration']}"
                for m in best["selected_model_or_models"]]
    return {"selected": selected,
            "this_model_selected": os.path.basename(model.path) in selected,
            "dice_before": best.get("result_on_crossval_pre_pp"),
            "dice_after": best.get("result_on_crossval_post_pp"),
            "steps": _steps(model, best.get("postprocessing_file", "")),
            "instructions": _instructions(model)}


def _local(model: ModelFolder, path: str) -> str:
    """``path`` as written on the machine that ran find_best_configuration, re-anchored at this
    dataset's results folder when the folder was copied elsewhere."""
    if os.path.isfile(path):
        return path
    parts = path.replace("\\", "/").split("/")
    if model.dataset in parts:
        tail = parts[len(parts) - parts[::-1].index(model.dataset):]
        return os.path.join(model.results_dataset, *tail)
    return path


def _steps(model: ModelFolder, pkl_path: str):
    """[function(arguments), ...] from postprocessing.json (an empty list: nothing helped)."""
    path = os.path.join(os.path.dirname(_local(model, pkl_path)), "postprocessing.json")
    if not os.path.isfile(path):
        return Missing(f"no postprocessing.json next to {pkl_path}")
    pp = read_json(path)
    return describe_steps(pp["postprocessing_fns"], pp["postprocessing_kwargs"])


def describe_steps(functions: List[str], kwargs: List[dict]) -> List[str]:
    return [f"{fn}({', '.join(f'{k}={json.dumps(v)}' for k, v in kw.items())})"
            for fn, kw in zip(functions, kwargs)]


def _instructions(model: ModelFolder):
    path = os.path.join(model.results_dataset, INSTRUCTIONS)
    if not os.path.isfile(path):
        return Missing(f"no {INSTRUCTIONS}")
    with open(path, encoding="utf-8") as f:
        return f.read()
