"""``nnsam2_evaluate_interactive``: Dice after 0, 1, ..., N simulated clicks, as interactive
segmentation is measured.

Each click is simulated at the centre of the largest error region (class = the reference there,
:func:`~nnsam2.interactive.click_simulation.next_click`) of the current segmentation in raw
voxels, and the case is refined with it (:class:`~nnsam2.interactive.session.InteractiveSession`).
Written to the output folder: ``summary.json`` (per case and click: Dice per class), ``clicks.json``
(replayable by ``nnsam2_predict --clicks``), ``interactive.md`` (the table),
``dice_per_click.png`` and ``segmentations/`` (each case after the last click).
"""
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnsam2.interactive.click_coordinates import Click, write_clicks_file
from nnsam2.interactive.click_simulation import clicks_to_reach, dice_per_class, next_click
from nnsam2.interactive.session import InteractiveSession
from nnsam2.model_report.plots import dice_after_clicks
from nnsam2.utils.atomic import atomic_write

SUMMARY, CLICKS, TABLE, PLOT = "summary.json", "clicks.json", "interactive.md", "dice_per_click.png"
SEGMENTATIONS = "segmentations"  # each case after the last click
NOC_THRESHOLDS = (0.85, 0.90)
WORST_CLASS_BELOW = 0.9  # the worst class is followed where prompt-free Dice is below this


def simulate_case(predictor, image_files: Sequence[str], reference_file: str, num_clicks: int,
                  name: str) -> Tuple[List[Dict[int, float]], List[Click], np.ndarray, dict]:
    """Dice per foreground class after 0..num_clicks clicks, the clicks, the last segmentation
    and the image's properties (to write it)."""
    reader = predictor.plans_manager.image_reader_writer_class()
    image, properties = reader.read_images(list(image_files))
    reference = reader.read_seg(reference_file)[0][0]
    labels = [int(v) for v in predictor.label_manager.foreground_labels]
    session = InteractiveSession(predictor, image, properties, name)
    segmentation, dice, clicks = session.segmentation, [], []
    spacing = properties.get("spacing")
    dice.append(dice_per_class(segmentation, reference, labels))
    for _ in range(num_clicks):
        found = next_click(segmentation, reference, spacing)
        if found is not None:  # a perfect segmentation needs no more clicks
            label, position = found
            position = (0,) * (3 - len(position)) + tuple(position)
            clicks.append(Click(label, *position))
            segmentation = session.refine([clicks[-1]])
        dice.append(dice_per_class(segmentation, reference, labels))
    session.close()
    return dice, clicks, segmentation, properties


def evaluate_interactive(predictor, cases: Dict[str, Tuple[Sequence[str], str]], num_clicks: int,
                         output_folder: str, class_names: Dict[int, str],
                         save_clicks: Optional[str] = None) -> dict:
    """Simulate ``num_clicks`` clicks on each case {name: (image files, reference file)}."""
    per_case, all_clicks = {}, {}
    writer = predictor.plans_manager.image_reader_writer_class()
    ending = predictor.dataset_json["file_ending"]
    os.makedirs(os.path.join(output_folder, SEGMENTATIONS), exist_ok=True)
    for name, (images, reference) in sorted(cases.items()):
        dice, clicks, segmentation, properties = simulate_case(predictor, images, reference,
                                                               num_clicks, name)
        # the predictor's writer writes atomically (nnsam2.inference.atomic_outputs)
        writer.write_seg(segmentation, os.path.join(output_folder, SEGMENTATIONS, name + ending),
                         properties)
        per_case[name] = dice
        all_clicks[name] = clicks
        print(f"nnsam2: {name}: mean Dice {_mean(dice[0]):.4f} -> {_mean(dice[-1]):.4f} after "
              f"{len(clicks)} click(s)")
    summary = summarise(per_case, num_clicks, class_names)
    for name, content in ((SUMMARY, json.dumps(summary, indent=1).encode()),
                          (TABLE, table(summary).encode()), (PLOT, dice_after_clicks(summary))):
        atomic_write(os.path.join(output_folder, name), lambda f, c=content: f.write(c))
    for path in {os.path.join(output_folder, CLICKS), save_clicks} - {None}:
        write_clicks_file(path, all_clicks)
    return summary


def summarise(per_case: Dict[str, List[Dict[int, float]]], num_clicks: int,
              class_names: Dict[int, str]) -> dict:
    """Means over cases per click count, NoC@85/90 and the worst class's Dice per case."""
    clicks = range(num_clicks + 1)
    mean_curve = [float(np.nanmean([_mean(d[k]) for d in per_case.values()])) for k in clicks]
    per_class = {class_names[c]: [float(np.nanmean([d[k][c] for d in per_case.values()]))
                                  for k in clicks] for c in class_names}
    worst = [_worst_class_curve(d) for d in per_case.values()]
    worst = [w for w in worst if w is not None]
    return {
        "num_clicks": num_clicks, "num_cases": len(per_case),
        "mean_dice": mean_curve, "dice_per_class": per_class,
        "noc": {f"NoC@{round(t * 100)}": float(np.mean([clicks_to_reach(
            [_mean(x) for x in d], t, num_clicks) for d in per_case.values()]))
            for t in NOC_THRESHOLDS},
        "worst_class_dice": ([float(np.mean([w[k] for w in worst])) for k in clicks]
                             if worst else None),
        "worst_class_cases": len(worst),
        "cases": {name: [{class_names[c]: v for c, v in d.items()} for d in dice]
                  for name, dice in per_case.items()},
    }


def _worst_class_curve(dice: List[Dict[int, float]]) -> Optional[List[float]]:
    """Dice after each click of the class with the lowest prompt-free Dice, if below 0.9."""
    start = {c: v for c, v in dice[0].items() if not np.isnan(v)}
    if not start or min(start.values()) >= WORST_CLASS_BELOW:
        return None
    worst = min(start, key=start.get)
    return [d[worst] for d in dice]


def table(summary: dict) -> str:
    names = list(summary["dice_per_class"])
    lines = ["| clicks | mean Dice | " + " | ".join(names) + " | worst class |",
             "|---:|---:|" + "---:|" * len(names) + "---:|"]
    worst = summary["worst_class_dice"]
    for k, mean in enumerate(summary["mean_dice"]):
        cells = [f"{summary['dice_per_class'][n][k]:.4f}" for n in names]
        lines.append(f"| {k} | {mean:.4f} | " + " | ".join(cells) +
                     f" | {'-' if worst is None else f'{worst[k]:.4f}'} |")
    noc = ", ".join(f"{k} {v:.2f}" for k, v in summary["noc"].items())
    lines += ["", f"{summary['num_cases']} case(s); {noc} (mean clicks to reach that mean Dice, "
                  f"capped at {summary['num_clicks']}); worst class: the class with the lowest "
                  f"prompt-free Dice where it is below {WORST_CLASS_BELOW} "
                  f"({summary['worst_class_cases']} case(s))"]
    return "\n".join(lines) + "\n"


def _mean(dice: Dict[int, float]) -> float:
    values = [v for v in dice.values() if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")

