"""Seconds per case, ratios and targets of the whole-case benchmark's timed predictions."""
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

# issue 13: per ACDC-like volume on the CPU, LW (fused) <= 0.75 x and HP <= 1.0 x nnU-Net 2D;
# on CUDA, SAM2Predictor >= 3 x faster than nnU-Net's patch-at-a-time predictor, same model.
CPU_TARGETS = (("lw", 0.75), ("hp", 1.0))
CUDA_MIN_SPEEDUP = 3.0


def quartiles(values: Sequence[float]) -> Dict[str, float]:
    values = sorted(values)
    q1, q3 = ((statistics.quantiles(values, n=4, method="inclusive")[::2]) if len(values) > 1
              else (values[0], values[0]))
    return dict(median=statistics.median(values), q1=q1, q3=q3, min=values[0], max=values[-1],
                n=len(values))


def _by_key(records: List[dict], model: str) -> Dict[Tuple[str, int], float]:
    return {(r["case"], r["repeat"]): r["seconds"] for r in records if r["model"] == model}


def compare(records: List[dict], model: str, reference: str) -> dict:
    """median(model) / median(reference) and the paired per-prediction ratios (same case, same
    repetition) with their quartiles."""
    a, b = _by_key(records, model), _by_key(records, reference)
    paired = [a[k] / b[k] for k in a if k in b and b[k] > 0]
    ratio = statistics.median(a.values()) / statistics.median(b.values())
    return dict(model=model, reference=reference, ratio=ratio,
                paired=quartiles(paired) if paired else None)


def _check(name: str, comparison: dict, threshold: float, at_most: bool = True) -> dict:
    """``at_most``: a ratio model / reference; else a speed-up (the model is the slower one)."""
    value, pair = comparison["ratio"], comparison["paired"]
    met = value <= threshold if at_most else value >= threshold
    noise = pair and (pair["q1"] <= threshold if at_most else pair["q3"] >= threshold)
    return dict(target=name, measured=value, paired=pair, threshold=threshold,
                status="PASS" if met else ("WITHIN NOISE" if noise else "MISS"))


def summarise(records: List[dict], reference: str, device: str) -> dict:
    """``rows`` (seconds per case of each model), ``ratios`` (every model against the reference
    and each ``X_patchwise`` against ``X``) and ``targets`` (those of ``device``)."""
    names = list(dict.fromkeys(r["model"] for r in records))
    rows = []
    for name in names:
        mine = [r for r in records if r["model"] == name]
        per_case = {c: statistics.median(r["seconds"] for r in mine if r["case"] == c)
                    for c in dict.fromkeys(r["case"] for r in mine)}
        rows.append(dict(model=name, seconds=quartiles([r["seconds"] for r in mine]),
                         network_seconds=quartiles([r.get("network_seconds", 0.0) for r in mine]),
                         per_case=per_case))
    ratios = [compare(records, n, reference) for n in names if n != reference]
    ratios += [compare(records, n, n.removesuffix("_patchwise")) for n in names
               if n.endswith("_patchwise")]
    found = {(c["model"], c["reference"]): c for c in ratios}
    targets: List[Optional[dict]] = []
    if device.startswith("cuda"):
        targets += [_check(f"{n.removesuffix('_patchwise')}: SAM2Predictor >= "
                           f"{CUDA_MIN_SPEEDUP:g}x faster than patch-at-a-time",
                           found[n, n.removesuffix("_patchwise")], CUDA_MIN_SPEEDUP, at_most=False)
                    for n in names if n.endswith("_patchwise")]
    else:
        targets += [_check(f"{v} / {reference} seconds per case", found[v, reference], limit)
                    for v, limit in CPU_TARGETS if (v, reference) in found]
    return dict(rows=rows, ratios=ratios, targets=targets)
