"""Renders a benchmark result as terminal text, Markdown and JSON."""
import json
import logging
from typing import List, Optional, Sequence, Tuple

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


def _millions(value: Optional[float]) -> str:
    return "-" if value is None else f"{value / 1e6:,.3f}"


def _latency(stats: Optional[dict]) -> str:
    if not stats:
        return "-"
    return f"{stats['median_ms']:,.1f} [{stats['q1_ms']:,.1f}-{stats['q3_ms']:,.1f}]"


def _patch(row: dict) -> str:
    h, w = row["input_patch"]
    return f"{h}x{w}"


def _ratio(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"{value:.2e}" if 0 < abs(value) < 0.01 else f"{value:,.3f}"


def _cost_row(row: dict) -> List[str]:
    head = [row["variant"], row["size"] or "-", _patch(row), str(row["batch_size"])]
    if row.get("error"):
        return head + ["error: " + row["error"][:80]] + [""] * 10
    return head + [_millions(row["params"]), _millions(row["trainable"]),
                   _num(row["trainable_pct"]), _num(row["gflops"]),
                   _latency(row.get("latency_bs1")), _latency(row.get("latency_bsN")),
                   _latency(row.get("train_step")), _num(row.get("rss_start_mib"), 0),
                   _num(row.get("peak_infer_mib"), 0), _num(row.get("peak_train_mib"), 0),
                   row.get("note", "")]


def cost_table(result: dict) -> List[List[str]]:
    header = ["variant", "size", "patch", "N", "params (M)", "trainable (M)", "train %", "GFLOPs",
              "latency bs1 ms [IQR]", "latency bsN ms [IQR]", "train step bsN ms [IQR]",
              "RSS at start MiB", "peak infer MiB", "peak train MiB", "note"]
    return [header] + [_cost_row(r) for r in result["rows"]]


def ratio_table(result: dict) -> List[List[str]]:
    header = ["variant", "size", "patch", "lat bs1 /none", "lat bsN /none", "train /none",
              "GFLOPs /none", "lat bs1 /U-Net", "lat bsN /U-Net", "train /U-Net",
              "GFLOPs /U-Net", "params /U-Net", "GFLOPs /SAM-B"]
    rows = [header]
    for r in result["ratios"]:
        none, unet, sam = r["vs_none"], r["vs_unet"], r["vs_sam_vit_b"] or {}
        rows.append([r["variant"], r["size"], "x".join(map(str, r["patch"]))]
                    + [_ratio(none[m]) for m in ("latency_bs1", "latency_bsN", "train_step",
                                                 "gflops")]
                    + [_ratio(unet[m]) for m in ("latency_bs1", "latency_bsN", "train_step",
                                                 "gflops", "params")]
                    + [_ratio(sam.get("gflops"))])
    return rows


def _measured(t: dict) -> Tuple[str, str]:
    """(paired ratio [IQR] or dtype finding, ratio of the separate processes)."""
    if "ops" in t:
        found = ", ".join(t["ops"]) if t["ops"] else ("none" if t["ops"] is not None
                                                      else "check failed")
        return found + (f" (...{t['error'][-60:]})" if t.get("error") else ""), "-"
    pair = t.get("paired")
    paired = f"{pair['median']:.3f} [{pair['q1']:.3f}-{pair['q3']:.3f}]" if pair else "-"
    return paired, _ratio(t.get("separate"))


def target_table(result: dict) -> List[List[str]]:
    rows = [["target", "size", "patch", "paired ratio [IQR] / finding", "separate processes",
             "threshold", "status"]]
    for t in result["targets"]:
        rows.append([t["target"], t["size"], "x".join(map(str, t["patch"])), *_measured(t),
                     _num(t["threshold"], 2), t["status"]])
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
             "Latency and training-step targets use paired ratios where measured: both models "
             "in one process, same input, timed alternately; median [q1-q3] of the per-iteration ratios "
             "(status from the paired ratio: PASS if its median is within the threshold, "
             "WITHIN NOISE if only its first quartile is, else MISS; the ratio of the "
             "separate-process medians is shown beside it).",
             MEMORY_METHOD["cuda" if device.startswith("cuda") else "cpu"] + ".",
             load_line(result)]
    lines += [f"nnU-Net U-Net {'x'.join(map(str, r['patch']))}: {r['unet_source']}"
              for r in result["rows"] if r["variant"] == "nnunet_unet"]
    lines += [f"bf16-autocast dtype check ran on {device}"
              + ("" if device.startswith("cuda") else " (CPU autocast; the CUDA check is the "
                 "one that matters for the slow-path target)") + "."]
    return lines + s["notes"]


def format_text(result: dict) -> str:
    parts = header_lines(result) + ["", _text(cost_table(result)), "", "Ratios (same run):",
                                    _text(ratio_table(result)), "", "Targets:",
                                    _text(target_table(result))]
    return "\n".join(parts)


def format_markdown(result: dict) -> str:
    parts = ["\n".join(f"- {line}" for line in header_lines(result)), "",
             _markdown(cost_table(result)), "", "Ratios (same run):", "",
             _markdown(ratio_table(result)), "", "Targets:", "", _markdown(target_table(result))]
    return "\n".join(parts) + "\n"


def write_json(result: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=str)
    logger.info("wrote %s", path)


def write_markdown(result: dict, path: str) -> None:
    with open(path, "w") as f:
        f.write(format_markdown(result))
    logger.info("wrote %s", path)

