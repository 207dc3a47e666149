"""``write_report``: collect a model folder's facts, draw the figures, render one HTML file.

The report is one self-contained file (figures embedded as PNG data URIs: it opens from disk, can
be mailed or archived alone) written atomically, so a failed run never replaces a good report.
"""
import contextlib
import datetime
import io
import logging
import os
from typing import Dict, List, Optional

from nnsam2.utils.nnunet_env import UsageError
from nnsam2.model_report import layout, metrics, overlays, plots
from nnsam2.model_report.missing import Missing, collect
from nnsam2.model_report.model_card import model_card
from nnsam2.model_report.postprocessing import chosen_postprocessing
from nnsam2.model_report.render import render_html
from nnsam2.model_report.training_log import all_curves
from nnsam2.utils.atomic import atomic_path
from nnsam2.utils.output_paths import check_output_folder

logger = logging.getLogger(__name__)

REPORT_FILE = "index.html"


def collect_report(model_folder: str, allow_pickle: Optional[bool] = None) -> dict:
    """Everything the template shows; each missing piece is a :class:`Missing`. ``allow_pickle``:
    read trusted legacy checkpoints' training logs in full (None: ``nnSAM2_allow_pickle``)."""
    model = layout.open_model_folder(model_folder)
    plans = layout.read_model_json(model, "plans.json")
    dataset_json = layout.read_model_json(model, "dataset.json")
    folds = layout.folds(model)
    if not {"labels", "file_ending", "channel_names"} <= set(dataset_json):
        raise UsageError(f"{model.path}/dataset.json lacks labels, file_ending or channel_names: "
                         f"the model folder is damaged")
    classes = metrics.foreground_classes(dataset_json)
    summaries = {f: metrics.fold_summary(model, f) for f in folds}
    fold_rows = metrics.fold_rows(summaries, classes)
    cases = metrics.case_rows(summaries, classes, dataset_json["file_ending"])
    logger.info("report: %s, folds %s, %d validation cases", model.path, folds, len(cases))
    return {"model": model, "classes": classes, "folds": fold_rows,
            "generated": datetime.datetime.now().isoformat(timespec="seconds"),
            "across": metrics.across_folds(fold_rows, classes), "cases": cases,
            "card": collect("model card", lambda: model_card(model, plans, dataset_json, folds)),
            "curves": _curve_figures(model, folds, allow_pickle),
            "overlays": collect("overlays", lambda: _overlay_figures(
                model, plans, dataset_json, classes, cases)),
            "postprocessing": collect("postprocessing", lambda: chosen_postprocessing(model)),
            "thin": collect("thin-structure metrics",
                            lambda: metrics.thin_structure_summaries(model)),
            "clicks": _click_results(model)}


def _click_results(model: layout.ModelFolder) -> Optional[object]:
    """None for a model trained without clicks; else its simulated-click results (or Missing)."""
    if not _trained_with_clicks(model.trainer):
        return None
    return collect("click results", lambda: [dict(r, png=plots.dice_after_clicks(r["summary"]))
                                             for r in metrics.interactive_summaries(model)])


def _trained_with_clicks(trainer_name: str) -> bool:
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnsam2.training.trainer_lookup import use_nnsam2_trainers
    use_nnsam2_trainers()
    with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net's search prints every module
        try:
            trainer = recursive_find_trainer_class_by_name(trainer_name)
        except Exception:  # a trainer this installation lacks: its report shows the rest
            return False
    return bool(getattr(trainer, "sam2_clicks", False))


def _curve_figures(model: layout.ModelFolder, folds: List[str],
                   allow_pickle: Optional[bool]) -> Dict[str, object]:
    return {f: c if isinstance(c, Missing) else
            collect(f"fold {f} curves", lambda c=c, f=f: plots.training_curves(c, f"fold {f}"))
            for f, c in all_curves(model, folds, allow_pickle).items()}


def _overlay_figures(model, plans, dataset_json, classes, cases) -> Dict[str, List[dict]]:
    """{class key: [{rank, row (of the case table), png or Missing}]} for the picked cases."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    reader = PlansManager(plans).image_reader_writer_class()
    raw = layout.raw_dataset_folder(model)
    ending = dataset_json["file_ending"]
    figures = {}
    for key, name in classes.items():
        figures[key] = []
        for rank, row in overlays.pick_cases(cases, key):
            def draw(row=row, rank=rank):
                files = overlays.case_files(model, raw, row, ending)
                view = overlays.load_slice(reader, files, key)
                where = "" if view.slice_index is None else f", slice {view.slice_index}"
                return plots.overlay(view, f"{name}, {rank}: {row['case']}\nDice "
                                           f"{row['dice'][key]:.4f} (fold {row['fold']}{where})")
            figures[key].append({"rank": rank, "row": row,
                                 "png": collect(f"overlay {row['case']}", draw)})
    return figures


def write_report(model_folder: str, output_folder: str,
                 allow_pickle: Optional[bool] = None) -> str:
    """Write ``output_folder/index.html`` atomically; returns its path."""
    check_output_folder(output_folder)  # before the model folder is read
    html = render_html(collect_report(model_folder, allow_pickle))
    path = os.path.join(os.path.abspath(output_folder), REPORT_FILE)
    with atomic_path(path, suffix=".html") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(html)  # atomic_path gives it the umask's mode, readable by others
    logger.debug("report written to %s", path)  # callers print the path
    return path
