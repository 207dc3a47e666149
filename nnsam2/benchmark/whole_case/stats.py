"""Seconds per case and ratios of the whole-case benchmark's timed predictions."""
import statistics
from typing import Dict, List

from nnsam2.benchmark.measure import quartiles


def compare(records: List[dict], model: str, reference: str, key: str = "seconds") -> dict:
    """median(model) / median(reference) of ``key`` and the paired per-prediction ratios (same
    case, same repetition) with their quartiles."""
    a, b = ({(r["case"], r["repeat"]): r[key] for r in records if r["model"] == m}
            for m in (model, reference))
    paired = [a[k] / b[k] for k in a if k in b and b[k] > 0]
    ratio = statistics.median(a.values()) / statistics.median(b.values())
    return dict(model=model, reference=reference, ratio=ratio,
                paired=quartiles(paired) if paired else None)


def summarise(records: List[dict], reference: str) -> dict:
    """``rows`` (seconds per case of each model) and ``ratios`` (every model against the
    reference and each ``X_patchwise`` against ``X``)."""
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
    return dict(rows=rows, ratios=ratios)


def compare_folds(records: List[dict], ensembles: Dict[str, str], folds: int) -> List[dict]:
    """Each ``folds``-fold ensemble (name -> its model with fold 0): medians of both (whole case
    and network), the ratios, and ``network_equivalents`` = (ensemble seconds - the 1-fold
    overhead) / 1-fold network seconds, where the overhead (reading, preprocessing, resampling,
    writing) is the 1-fold seconds outside the network: what the folds cost in one-fold network
    times if that overhead is paid once."""
    out = []
    for ensemble, single in ensembles.items():
        medians = {(m, k): statistics.median(r[k] for r in records if r["model"] == m)
                   for m in (single, ensemble) for k in ("seconds", "network_seconds")}
        one, net = medians[single, "seconds"], medians[single, "network_seconds"]
        seconds = compare(records, ensemble, single)
        out.append(dict(
            model=single, ensemble=ensemble, folds=folds,
            one_fold=dict(seconds=one, network_seconds=net),
            all_folds=dict(seconds=medians[ensemble, "seconds"],
                           network_seconds=medians[ensemble, "network_seconds"]),
            ratio=seconds["ratio"], paired=seconds["paired"],
            network_ratio=compare(records, ensemble, single, "network_seconds")["ratio"],
            network_equivalents=(medians[ensemble, "seconds"] - (one - net)) / net))
    return out
