"""Summary output: a readable table and an atomically written JSON file."""
import json
import logging
import math
import os
import tempfile
from typing import Any

logger = logging.getLogger(__name__)

TABLE_METRICS = ("dice", "sensitivity", "specificity", "auc", "cldice")
SUMMARY_FILE = "summary_thin_structures.json"  # nnU-Net's own evaluation writes summary.json


def json_safe(obj: Any) -> Any:
    """Copy of ``obj`` with NaN/inf floats replaced by None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json_atomic(obj: Any, path: str) -> None:
    """Write ``obj`` as JSON to a temporary file next to ``path``, then rename it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(json_safe(obj), f, indent=2, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    logger.info("wrote %s", path)


def _fmt(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def format_table(summary: dict) -> str:
    """One row per case plus a mean row; per label the metrics in :data:`TABLE_METRICS`."""
    columns = [(k, m) for k in map(str, summary["labels"]) for m in TABLE_METRICS
               if m in summary["mean"][k]]
    header = ["case"] + [f"{m}[{k}]" for k, m in columns]
    rows = [[c["case"]] + [_fmt(c["metrics"][k][m]) for k, m in columns]
            for c in summary["metric_per_case"]]
    rows.append(["mean"] + [_fmt(summary["mean"][k][m]) for k, m in columns])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in [header] + rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)
