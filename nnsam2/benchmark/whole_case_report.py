"""Renders a whole-case benchmark result as terminal text and Markdown (JSON: report.write_json)."""
from typing import List

from nnsam2.benchmark.machine import describe
from nnsam2.benchmark.report import _markdown, _text

WHAT = {"nnunet_2d": "nnU-Net 2D U-Net, nnUNetPredictor",
        "patchwise": "same network and weights, nnU-Net's nnUNetPredictor (patch at a time)",
        "sam2": "SAM2Predictor"}


def _seconds(stats: dict) -> str:
    return f"{stats['median']:.2f} [{stats['q1']:.2f}-{stats['q3']:.2f}]"


def _ratio(comparison: dict) -> str:
    pair = comparison["paired"]
    return f"{comparison['ratio']:.3f}" + (f" (paired {pair['median']:.3f} [{pair['q1']:.3f}-"
                                           f"{pair['q3']:.3f}])" if pair else "")


def _what(name: str, model: dict) -> str:
    kind = ("nnunet_2d" if name == "nnunet_2d" else
            "patchwise" if name.endswith("_patchwise") else "sam2")
    return f"{WHAT[kind]} ({model['trainer']})"


def model_table(result: dict) -> List[List[str]]:
    reference = {c["model"]: c for c in result["ratios"] if c["reference"] == "nnunet_2d"}
    base = next(r["network_seconds"]["median"] for r in result["rows"] if r["model"] == "nnunet_2d")
    rows = [["model", "what", "patch", "s/case median [IQR]", "n", "/ nnunet_2d",
             "network s/case", "network / nnunet_2d"]]
    for row in result["rows"]:
        name, model = row["model"], result["models"][row["model"]]
        rows.append([name, _what(name, model), "x".join(map(str, model["patch"])),
                     _seconds(row["seconds"]), str(row["seconds"]["n"]),
                     _ratio(reference[name]) if name in reference else "1.000",
                     _seconds(row["network_seconds"]),
                     f"{row['network_seconds']['median'] / base:.3f}" if base else "-"])
    return rows


def extra_ratio_table(result: dict) -> List[List[str]]:
    rows = [["model", "reference", "ratio of medians (paired [IQR])"]]
    rows += [[c["model"], c["reference"], _ratio(c)] for c in result["ratios"]
             if c["reference"] != "nnunet_2d"]
    return rows


def target_table(result: dict) -> List[List[str]]:
    rows = [["target", "measured", "threshold", "status"]]
    rows += [[t["target"], f"{t['measured']:.3f}", f"{t['threshold']:g}", t["status"]]
             for t in result["targets"]]
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
             + f"; every model trained {s['iterations']} iteration(s) (only time is measured).",
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
             "resampling and writing).",
             ]
    if load:
        lines.append(f"1-minute load average: {load[0]:.1f} before, {load[-1]:.1f} after the "
                     f"timed predictions, on {result['machine']['logical_cpus']} logical CPUs.")
    if s.get("command"):
        lines.append(f"Command: `{s['command']}`")
    return lines


def format_text(result: dict) -> str:
    return "\n".join(header_lines(result) + ["", _text(model_table(result)), "",
                                             "Batched vs patch-at-a-time:",
                                             _text(extra_ratio_table(result)), "", "Targets:",
                                             _text(target_table(result))])


def format_markdown(result: dict) -> str:
    return "\n".join(["\n".join(f"- {line}" for line in header_lines(result)), "",
                      _markdown(model_table(result)), "", "Batched vs patch-at-a-time:", "",
                      _markdown(extra_ratio_table(result)), "", "Targets:", "",
                      _markdown(target_table(result))]) + "\n"
