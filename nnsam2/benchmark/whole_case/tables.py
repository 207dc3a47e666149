"""Renders a whole-case benchmark result as terminal text and Markdown."""
from typing import List

from nnsam2.benchmark.machine import describe
from nnsam2.benchmark.tables import _patch, iqr, render

def _ratio(comparison: dict) -> str:
    pair = comparison["paired"]
    return f"{comparison['ratio']:.3f}" + (f" (paired {iqr(pair)})" if pair else "")


def _what(name: str, model: dict) -> str:
    what = ("nnU-Net 2D U-Net, nnUNetPredictor" if name == "nnunet_2d" else
            "same network and weights, nnU-Net's nnUNetPredictor (patch at a time)"
            if name.endswith("_patchwise") else "SAM2Predictor")
    folds = model.get("folds", ["all"])
    if folds != ["all"]:
        what += f", fold{'s' if len(folds) > 1 else ''} {','.join(map(str, folds))}"
    return f"{what} ({model['trainer']})"


def model_table(result: dict) -> List[List[str]]:
    reference = {c["model"]: c for c in result["ratios"] if c["reference"] == "nnunet_2d"}
    base = next(r["network_seconds"]["median"] for r in result["rows"] if r["model"] == "nnunet_2d")
    rows = [["model", "what", "patch", "s/case median [IQR]", "n", "/ nnunet_2d",
             "network s/case", "network / nnunet_2d"]]
    for row in result["rows"]:
        name, model = row["model"], result["models"][row["model"]]
        rows.append([name, _what(name, model), _patch(model["patch"]),
                     iqr(row["seconds"], ".2f"), str(row["seconds"]["n"]),
                     _ratio(reference[name]) if name in reference else "1.000",
                     iqr(row["network_seconds"], ".2f"),
                     f"{row['network_seconds']['median'] / base:.3f}" if base else "-"])
    return rows


def extra_ratio_table(result: dict) -> List[List[str]]:
    rows = [["model", "reference", "ratio of medians (paired [IQR])"]]
    rows += [[c["model"], c["reference"], _ratio(c)] for c in result["ratios"]
             if c["reference"] != "nnunet_2d"]
    return rows


def fold_table(result: dict) -> List[List[str]]:
    n = result["settings"]["folds"]
    rows = [["model", "s/case fold 0", f"s/case {n} folds", f"{n} folds / fold 0",
             "network s/case fold 0", f"network s/case {n} folds", f"network {n} folds / fold 0",
             "in fold-0 network times"]]
    for c in result["folds"]:
        one, every = c["one_fold"], c["all_folds"]
        rows.append([c["model"], f"{one['seconds']:.2f}", f"{every['seconds']:.2f}", _ratio(c),
                     f"{one['network_seconds']:.2f}", f"{every['network_seconds']:.2f}",
                     f"{c['network_ratio']:.3f}", f"{c['network_equivalents']:.2f}"])
    return rows


def header_lines(result: dict) -> List[str]:
    s = result["settings"]
    first = next(iter(result["models"].values()))
    load = s.get("loadavg_1min") or []
    lines = [f"Machine: {describe(result['machine'])}",
             f"Device: {s['device']}; SAM2 size {s['sam2_size']}; "
             f"{s['cases']} case(s) of "
             + (f"{s['slices']} x {s['shape'][0]} x {s['shape'][1]} (ACDC-like, spacing "
                f"{' x '.join(map(str, s['spacing']))} mm)" if not s["raw_dataset"]
                else f"raw dataset {s['raw_dataset']}")
             + f"; every model trained {s['iterations']} iteration(s) (only time is measured)"
             + (f"; nnsam2 models on {s['folds']} folds of one split (the same random SAM2 in "
                f"each), the reference on fold all." if s.get("folds", 1) > 1 else "."),
             f"Same test-time augmentation for every model: mirroring "
             f"{'on (axes ' + str(first['mirroring_axes']) + ')' if s['mirroring'] else 'off'}, "
             f"step size {s['step_size']}, Gaussian weighting; {s['warmup']} untimed warm-up "
             f"prediction(s) per model, then {s['repeats']} repetition(s) of every case with "
             f"every model, interleaved (model order rotated each repetition).",
             "One case = read the raw NIfTI, preprocess, sliding-window prediction, resample and "
             "write the segmentation, in one process; seconds per case: median [q1-q3] over "
             "every timed prediction. Ratios: median / median; paired: the median [q1-q3] of "
             "the per-prediction ratios (same case, same repetition). Network s/case: the "
             "sliding-window part of the same predictions (the rest is reading, preprocessing, "
             "resampling and writing)."]
    if load:
        lines.append(f"1-minute load average: {load[0]:.1f} before, {load[-1]:.1f} after the "
                     f"timed predictions, on {result['machine']['logical_cpus']} logical CPUs.")
    if s.get("command"):
        lines.append(f"Command: `{s['command']}`")
    return lines


def _tables(result: dict) -> list:
    tables = [(None, model_table(result))]
    if len(extra_ratio_table(result)) > 1:  # --patchwise none: no such ratio
        tables.append(("Batched vs patch-at-a-time:", extra_ratio_table(result)))
    if result.get("folds"):
        tables.append((f"{result['settings']['folds']} folds vs fold 0 (SAM2Predictor, medians; "
                       "in fold-0 network times: (N-fold s/case - the fold-0 s/case outside the "
                       "network) / fold-0 network s/case, the overhead paid once):",
                       fold_table(result)))
    return tables


def format_text(result: dict) -> str:
    return render(header_lines(result), _tables(result))


def format_markdown(result: dict) -> str:
    return render(header_lines(result), _tables(result), markdown=True)
