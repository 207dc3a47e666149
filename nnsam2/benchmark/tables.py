"""Renders benchmark results as terminal text or Markdown (shared with the whole-case mode's
tables) and writes them with the JSON result."""
import functools
import json
import logging
from typing import Callable, List, Optional, Sequence, Tuple

from nnsam2.benchmark.machine import describe

logger = logging.getLogger(__name__)

MEMORY_METHOD = {
    "cuda": "peak memory = torch.cuda.max_memory_allocated, reset before inference and before "
            "the training step (each job in its own process)",
    "cpu": "peak memory = peak RSS (ru_maxrss) of a fresh process per job, read after inference "
           "and again after the training step; it includes the process baseline (Python, torch, "
           "sam2, nnU-Net imported: 'RSS at start')",
}


def _num(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def iqr(stats: Optional[dict], fmt: str = ".3f", unit: str = "") -> str:
    """``median [q1-q3]`` of a statistics dict (keys ``median``, ``q1``, ``q3`` + ``unit``)."""
    if not stats:
        return "-"
    median, q1, q3 = (format(stats[k + unit], fmt) for k in ("median", "q1", "q3"))
    return f"{median} [{q1}-{q3}]"


def _patch(patch: Sequence[int]) -> str:
    return "x".join(map(str, patch))


def _ratio(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"{value:.2e}" if 0 < abs(value) < 0.01 else f"{value:,.3f}"


def _cost_row(row: dict) -> List[str]:
    head = [row["variant"], row["size"] or "-", _patch(row["input_patch"]), str(row["batch_size"])]
    if row.get("error"):
        return head + ["error: " + row["error"][:80]] + [""] * 10
    times = [iqr(row.get(k), ",.1f", "_ms") for k in ("latency_bs1", "latency_bsN", "train_step")]
    return head + [_num(row["params"] / 1e6, 3), _num(row["trainable"] / 1e6, 3),
                   _num(row["trainable_pct"]), _num(row["gflops"]), *times,
                   _num(row.get("rss_start_mib"), 0), _num(row.get("peak_infer_mib"), 0),
                   _num(row.get("peak_train_mib"), 0), row.get("note", "")]


def cost_table(result: dict) -> List[List[str]]:
    header = ["variant", "size", "patch", "N", "params (M)", "trainable (M)", "train %", "GFLOPs",
              "latency bs1 ms [IQR]", "latency bsN ms [IQR]", "train step bsN ms [IQR]",
              "RSS at start MiB", "peak infer MiB", "peak train MiB", "note"]
    return [header] + [_cost_row(r) for r in result["rows"]]


RATIO_COLUMNS = ([("vs_none", m) for m in ("latency_bs1", "latency_bsN", "train_step", "gflops")]
                 + [("vs_unet", m) for m in ("latency_bs1", "latency_bsN", "train_step", "gflops",
                                             "params")] + [("vs_sam_vit_b", "gflops")])


def ratio_table(result: dict) -> List[List[str]]:
    header = ["variant", "size", "patch", "lat bs1 /none", "lat bsN /none", "train /none",
              "GFLOPs /none", "lat bs1 /U-Net", "lat bsN /U-Net", "train /U-Net",
              "GFLOPs /U-Net", "params /U-Net", "GFLOPs /SAM-B"]
    return [header] + [[r["variant"], r["size"], _patch(r["patch"])]
                       + [_ratio((r[key] or {}).get(m)) for key, m in RATIO_COLUMNS]
                       for r in result["ratios"]]


def pair_table(result: dict) -> List[List[str]]:
    rows = [["pair", "size", "patch", "paired ratio [IQR]", "separate processes"]]
    rows += [[c["comparison"], c["size"], _patch(c["patch"]), iqr(c["paired"]),
              _ratio(c["separate"])] for c in result["comparisons"]]
    return rows


def fp32_table(result: dict) -> List[List[str]]:
    rows = [["variant", "size", "patch", "fp32 heavy ops under bf16 autocast beyond none's"]]
    for f in result["extra_fp32_ops"]:
        found = (", ".join(f["ops"]) or "none") if f["ops"] is not None else "check failed"
        rows.append([f["variant"], f["size"], _patch(f["patch"]),
                     found + (f" (...{f['error'][-60:]})" if f["error"] else "")])
    return rows


def _text(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown(rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
    return "\n".join(lines)


def load_line(result: dict) -> str:
    """The 1-minute load average seen by the jobs, with a warning when the CPU was shared."""
    loads = [r[k] for r in result["rows"] for k in ("loadavg_start", "loadavg_end") if k in r]
    if not loads:
        return "Load average: not recorded."
    cpus = result["machine"]["logical_cpus"]
    line = (f"1-minute load average during the jobs: {min(loads):.1f}-{max(loads):.1f} "
            f"on {cpus} logical CPUs")
    if max(loads) > cpus:
        line += (" - the CPU was shared with other processes, so timings are disturbed "
                 "(compare ratios within one run, and medians rather than single runs)")
    return line + "."


def header_lines(result: dict) -> List[str]:
    s, machine = result["settings"], result["machine"]
    device = s["device"]
    lines = [f"Machine: {describe(machine)}",
             f"Device: {device}; precision: "
             f"{'bf16 autocast' if device.startswith('cuda') else 'fp32 (no autocast)'}; "
             f"warm-up {s['warmup']}, {s['repeats']} timed runs each, median [q1-q3] in ms; "
             f"batch N = {s['batch_size']} (column N); {s['channels']} input channel(s), "
             f"{s['classes']} classes; random init (costs only).",
             "GFLOPs = 2 x multiply-accumulates, forward, one patch (batch 1), counted by "
             "torch.utils.flop_counter (+ formulas for deformable convolution's sampling).",
             "Training step = forward + backward + AdamW step on the trainable parameters "
             "(cross-entropy on random labels) at batch N.",
             "Compared pairs: paired ratio = both models in one process, same input, timed "
             "alternately, median [q1-q3] of the per-iteration ratios (where measured); beside "
             "it the ratio of the separate-process medians.",
             MEMORY_METHOD["cuda" if device.startswith("cuda") else "cpu"] + ".",
             load_line(result)]
    lines += [f"nnU-Net U-Net {_patch(r['patch'])}: {r['unet_source']}"
              for r in result["rows"] if r["variant"] == "nnunet_unet"]
    lines += [f"bf16-autocast dtype check ran on {device}"
              + ("" if device.startswith("cuda") else " (CPU autocast; the CUDA check is the "
                 "one that shows slow paths on GPUs)") + "."]
    return lines + s["notes"]


def render(lines: List[str], tables: Sequence[Tuple[Optional[str], List[List[str]]]],
           markdown: bool = False) -> str:
    """Header ``lines`` (a bulleted list in Markdown), then each (title or None, rows) table."""
    parts = ["\n".join(f"- {line}" for line in lines)] if markdown else list(lines)
    for title, rows in tables:
        parts.append("")
        if title:
            parts += [title, ""] if markdown else [title]
        parts.append(_markdown(rows) if markdown else _text(rows))
    return "\n".join(parts) + ("\n" if markdown else "")


def _tables(result: dict) -> list:
    return [(None, cost_table(result)), ("Ratios (same run):", ratio_table(result)),
            ("Compared pairs:", pair_table(result)),
            ("bf16 autocast dtype check:", fp32_table(result))]


def format_text(result: dict) -> str:
    return render(header_lines(result), _tables(result))


def format_markdown(result: dict) -> str:
    return render(header_lines(result), _tables(result), markdown=True)


def write_files(result: dict, json_path: Optional[str] = None,
                markdown_path: Optional[str] = None,
                markdown: Callable[[dict], str] = format_markdown) -> None:
    """The result as JSON and its tables as Markdown, where paths are given."""
    to_json = functools.partial(json.dumps, indent=1, default=str)
    for path, fmt in ((json_path, to_json), (markdown_path, markdown)):
        if path:
            with open(path, "w") as f:
                f.write(fmt(result))
            logger.info("wrote %s", path)
