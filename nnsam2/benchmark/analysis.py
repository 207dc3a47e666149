"""Ratios between rows of one run, the compared pairs and the bf16-autocast dtype findings."""
from typing import Dict, List, Optional

from nnsam2.benchmark.paired import PAIRS, TRAIN_PAIRS

METRICS = ("latency_bs1", "latency_bsN", "train_step", "gflops", "params", "trainable",
           "peak_infer_mib", "peak_train_mib")
# (candidate, reference, row metric, key of the paired measurement, label) of every compared pair
COMPARED = ([(a, b, *m) for a, b in PAIRS for m in (("latency_bs1", "bs1", "latency, batch 1"),
                                                    ("latency_bsN", "bsN", "latency, batch N"))]
            + [(a, b, "train_step", "train_bsN", "training step, batch N") for a, b in TRAIN_PAIRS])


def metric(row: Optional[dict], name: str) -> Optional[float]:
    """A row's number for ``name`` (the median for timings); None when absent or failed."""
    if row is None or row.get("error"):
        return None
    value = row.get(name)
    if isinstance(value, dict):
        value = value.get("median_ms")
    return None if value is None else float(value)


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None or b == 0 else a / b


def find(rows: List[dict], variant: str, size: Optional[str] = None,
         patch=None) -> Optional[dict]:
    for row in rows:
        if row["variant"] == variant and (size is None or row["size"] == size) and (
                patch is None or tuple(row["patch"]) == tuple(patch)):
            return row
    return None


def _ratios(row: dict, reference: Optional[dict], metrics=METRICS) -> Dict[str, Optional[float]]:
    return {m: ratio(metric(row, m), metric(reference, m)) for m in metrics}


def compute_ratios(rows: List[dict]) -> List[dict]:
    """For each SAM2 row: ratios vs ``none`` (same size and patch), vs nnU-Net's U-Net (same
    patch) and, where measured, GFLOPs and parameters vs SAM ViT-B at 1024x1024."""
    sam_vit_b = find(rows, "sam_vit_b")
    out = []
    for row in rows:
        if row["size"] is None:
            continue
        none = find(rows, "none", row["size"], row["patch"])
        unet = find(rows, "nnunet_unet", None, row["patch"])
        entry = dict(variant=row["variant"], size=row["size"], patch=row["patch"],
                     vs_none=_ratios(row, none), vs_unet=_ratios(row, unet), vs_sam_vit_b=None)
        if sam_vit_b is not None:
            entry["vs_sam_vit_b"] = _ratios(row, sam_vit_b, ("gflops", "params", "trainable"))
        out.append(entry)
    return out


def _paired(paired: List[dict], a: str, b: str, row: dict, key: str) -> Optional[dict]:
    for p in paired:
        if (p["variant"], p["reference"], p["size"]) == (a, b, row["size"]) and (
                tuple(p["patch"]) == tuple(row["patch"])) and key in p and not p.get("error"):
            return p[key]
    return None


def compare_pairs(rows: List[dict], paired: Optional[List[dict]] = None) -> List[dict]:
    """Every compared pair (:data:`COMPARED`) with both models in this run (training steps only
    where measured): ``paired`` (median and quartiles of the alternating measurement, None
    without one) and ``separate`` (the ratio of the separate-process medians)."""
    out = []
    for row in rows:
        for a, b, name, key, label in COMPARED:
            other = find(rows, b, row["size"], row["patch"])
            if row["variant"] != a or other is None or (key == "train_bsN"
                                                        and not metric(row, name)):
                continue
            out.append(dict(comparison=f"{a} / {b} {label}", variant=a, reference=b,
                            size=row["size"], patch=row["patch"], metric=name,
                            paired=_paired(paired or [], a, b, row, key),
                            separate=ratio(metric(row, name), metric(other, name))))
    return out


def fp32_ops(row: dict) -> Optional[List[str]]:
    """Heavy ops that ran in fp32 under bf16 autocast (None when the check failed or is absent)."""
    check = row.get("autocast_bf16_ops")
    if not check or check.get("error"):
        return None
    return sorted(op.split("@")[0] for op in check["ops"] if op.endswith("@float32"))


def extra_fp32_ops(rows: List[dict]) -> List[dict]:
    """For each SAM2 row but ``none``'s: the heavy ops that ran in fp32 under bf16 autocast and
    not in ``none``'s forward (``ops`` None when the check failed; ``error`` says why)."""
    out = []
    for row in rows:
        if row["size"] is None or row.get("error") or row["variant"] == "none":
            continue
        none = find(rows, "none", row["size"], row["patch"])
        ops, base = fp32_ops(row), (fp32_ops(none) if none else []) or []
        out.append(dict(variant=row["variant"], size=row["size"], patch=row["patch"],
                        ops=None if ops is None else sorted(set(ops) - set(base)),
                        error=(row.get("autocast_bf16_ops") or {}).get("error")))
    return out
