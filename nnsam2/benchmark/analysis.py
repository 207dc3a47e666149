"""Ratios between rows of one run and the issue's targets, checked on the measured medians."""
from typing import Dict, List, Optional

from nnsam2.benchmark.paired import PAIRS, TRAIN_PAIRS
from nnsam2.benchmark.variants import TRAINING_FORM

METRICS = ("latency_bs1", "latency_bsN", "train_step", "gflops", "params", "trainable",
           "peak_infer_mib", "peak_train_mib")
LW_REPARAM_MAX_OVERHEAD = 1.05  # lw_reparam latency <= 1.05 x none (same size and patch)
HP_TRAIN_MAX_RATIO = 2.0  # hp training step <= 2.0 x none's (issue 13)


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


def _target(name: str, row: dict, measured: Optional[float], threshold: float) -> dict:
    status = "n/a" if measured is None else ("PASS" if measured <= threshold else "MISS")
    return dict(target=name, size=row["size"], patch=row["patch"], measured=measured,
                threshold=threshold, status=status)


def _paired(paired: List[dict], a: str, b: str, row: dict, key: str) -> Optional[dict]:
    for p in paired:
        if (p["variant"], p["reference"], p["size"]) == (a, b, row["size"]) and (
                tuple(p["patch"]) == tuple(row["patch"])) and key in p and not p.get("error"):
            return p[key]
    return None


def _paired_check(name: str, row: dict, other: dict, metric_name: str, pair: Optional[dict],
                  limit: float) -> dict:
    """A target measured by the paired ratio where one was measured, else the separate one."""
    separate = ratio(metric(row, metric_name), metric(other, metric_name))
    check = _target(name, row, pair["median"] if pair else separate, limit)
    if pair and check["status"] == "MISS" and pair["q1"] <= limit:
        check["status"] = "WITHIN NOISE"  # median above, first quartile not
    check.update(paired=pair, separate=separate)
    return check


def _timing_targets(rows: List[dict], paired: List[dict]) -> List[dict]:
    """lw_reparam <= 1.05 x none (and none_peg, same PEGs, when measured); fused <= training
    form; hp training step <= 2.0 x none's."""
    checks = []
    for row in rows:
        for a, b in PAIRS:
            other = find(rows, b, row["size"], row["patch"])
            if row["variant"] != a or other is None:
                continue
            limit = 1.0 if TRAINING_FORM[a] == b else LW_REPARAM_MAX_OVERHEAD
            for lat, key, label in (("latency_bs1", "bs1", "batch 1"),
                                    ("latency_bsN", "bsN", "batch N")):
                checks.append(_paired_check(f"{a} / {b} latency, {label}", row, other, lat,
                                            _paired(paired, a, b, row, key), limit))
        for a, b in TRAIN_PAIRS:
            other = find(rows, b, row["size"], row["patch"])
            if row["variant"] == a and other is not None and metric(row, "train_step"):
                checks.append(_paired_check(f"{a} / {b} training step, batch N", row, other,
                                            "train_step", _paired(paired, a, b, row, "train_bsN"),
                                            HP_TRAIN_MAX_RATIO))
    return checks


def fp32_ops(row: dict) -> Optional[List[str]]:
    """Heavy ops that ran in fp32 under bf16 autocast (None when the check failed or is absent)."""
    check = row.get("autocast_bf16_ops")
    if not check or check.get("error"):
        return None
    return sorted(op.split("@")[0] for op in check["ops"] if op.endswith("@float32"))


def _dtype_targets(rows: List[dict]) -> List[dict]:
    checks = []
    for row in rows:
        if row["size"] is None or row.get("error") or row["variant"] == "none":
            continue
        none = find(rows, "none", row["size"], row["patch"])
        ops, base = fp32_ops(row), (fp32_ops(none) if none else []) or []
        extra = None if ops is None else sorted(set(ops) - set(base))
        check = _target(f"{row['variant']}: fp32 heavy ops under bf16 autocast beyond none's", row,
                        None if extra is None else float(len(extra)), 0.0)
        check["ops"] = extra
        check["error"] = (row.get("autocast_bf16_ops") or {}).get("error")
        checks.append(check)
    return checks


def check_targets(rows: List[dict], paired: Optional[List[dict]] = None) -> List[dict]:
    """lw_reparam <= 1.05 x none; re-parameterised/merged <= training form; hp training step
    <= 2.0 x none; no extra fp32 ops."""
    return _timing_targets(rows, paired or []) + _dtype_targets(rows)
