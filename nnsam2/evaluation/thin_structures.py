"""Pixel metrics for thin structures (retinal vessels): pure functions on numpy arrays.

All functions take binary masks of one class (any shape, 2D (Y, X) or 3D (Z, Y, X)) and an optional
field-of-view mask of the same shape: pixels outside it are ignored (DRIVE convention: metrics are
reported inside the FOV only). Undefined ratios (0 / 0) are returned as NaN.
"""
import logging
from typing import Dict, Iterable, Optional

import numpy as np
from skimage.morphology import skeletonize
from sklearn.metrics import roc_auc_score

logger = logging.getLogger(__name__)


def _restrict(mask: Optional[np.ndarray], *arrays: np.ndarray):
    """Flattened ``arrays`` restricted to the pixels where ``mask`` is nonzero (all if None)."""
    shape = arrays[0].shape
    for a in arrays:
        if a.shape != shape:
            raise ValueError(f"shape mismatch: {a.shape} vs {shape}")
    if mask is None:
        return [a.ravel() for a in arrays]
    if mask.shape != shape:
        raise ValueError(f"field-of-view mask shape {mask.shape} does not match {shape}")
    inside = mask.ravel() != 0
    return [a.ravel()[inside] for a in arrays]


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def confusion_counts(pred: np.ndarray, ref: np.ndarray, fov: Optional[np.ndarray] = None) -> Dict[str, int]:
    """True/false positives/negatives of binary ``pred`` against binary ``ref`` inside ``fov``."""
    pred, ref = (a.astype(bool) for a in _restrict(fov, pred, ref))
    tp = int(np.count_nonzero(pred & ref))
    fp = int(np.count_nonzero(pred & ~ref))
    fn = int(np.count_nonzero(~pred & ref))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": int(pred.size) - tp - fp - fn}


def dice(counts: Dict[str, int]) -> float:
    """2 TP / (2 TP + FP + FN); NaN when reference and prediction are both empty."""
    return _ratio(2 * counts["tp"], 2 * counts["tp"] + counts["fp"] + counts["fn"])


def sensitivity(counts: Dict[str, int]) -> float:
    """TP / (TP + FN) (recall); NaN without reference foreground."""
    return _ratio(counts["tp"], counts["tp"] + counts["fn"])


def specificity(counts: Dict[str, int]) -> float:
    """TN / (TN + FP); NaN without reference background."""
    return _ratio(counts["tn"], counts["tn"] + counts["fp"])


def accuracy(counts: Dict[str, int]) -> float:
    """(TP + TN) / all pixels (inside the FOV)."""
    return _ratio(counts["tp"] + counts["tn"], sum(counts.values()))


def pixel_auc(prob: np.ndarray, ref: np.ndarray, fov: Optional[np.ndarray] = None) -> float:
    """Area under the pixel-wise ROC curve of foreground probabilities ``prob`` against ``ref``.

    NaN when ``ref`` inside the FOV holds only one class (the ROC curve is undefined).
    """
    prob, ref = _restrict(fov, prob, ref)
    ref = ref.astype(bool)
    if ref.all() or not ref.any():
        return float("nan")
    return float(roc_auc_score(ref, prob))


def skeleton(mask: np.ndarray, per_slice: bool = True) -> np.ndarray:
    """Binary skeleton (scikit-image ``skeletonize``); 3D arrays per Z slice or as a volume.

    Args:
        mask: (Y, X) or (Z, Y, X) binary mask.
        per_slice: for 3D input, skeletonize each (Y, X) slice (2D data stored as Z = 1 volumes,
            anisotropic stacks) instead of one 3D skeletonization.
    """
    mask = mask.astype(bool)
    if mask.ndim == 3 and per_slice:
        return np.stack([skeletonize(s) for s in mask])
    return skeletonize(mask)


def cl_dice(pred: np.ndarray, ref: np.ndarray, fov: Optional[np.ndarray] = None,
            per_slice: bool = True) -> float:
    """Centerline Dice (Shit et al. 2021, https://arxiv.org/abs/2003.07562).

    Tprec = |S(pred) & ref| / |S(pred)|, Tsens = |S(ref) & pred| / |S(ref)|,
    clDice = 2 Tprec Tsens / (Tprec + Tsens). Masks are cut to the FOV before skeletonizing.
    NaN when both masks are empty, 0 when exactly one is.

    Args:
        pred: binary prediction, (Y, X) or (Z, Y, X).
        ref: binary reference, same shape.
        fov: optional field-of-view mask, same shape.
        per_slice: see :func:`skeleton`.
    """
    pred, ref = pred.astype(bool), ref.astype(bool)
    if fov is not None:
        _restrict(fov, pred, ref)  # shape checks
        pred, ref = pred & (fov != 0), ref & (fov != 0)
    skel_pred, skel_ref = skeleton(pred, per_slice), skeleton(ref, per_slice)
    if not skel_pred.any() and not skel_ref.any():
        return float("nan")
    if not skel_pred.any() or not skel_ref.any():
        return 0.0
    tprec = np.count_nonzero(skel_pred & ref) / np.count_nonzero(skel_pred)
    tsens = np.count_nonzero(skel_ref & pred) / np.count_nonzero(skel_ref)
    return float(2 * tprec * tsens / (tprec + tsens)) if tprec + tsens > 0 else 0.0


def label_metrics(pred_seg: np.ndarray, ref_seg: np.ndarray, label: int,
                  prob: Optional[np.ndarray] = None, fov: Optional[np.ndarray] = None,
                  with_cldice: bool = False, cldice_per_slice: bool = True) -> Dict[str, float]:
    """All metrics of one label on one case, plus its confusion counts.

    Args:
        pred_seg: integer predicted segmentation, (Z, Y, X) or (Y, X).
        ref_seg: integer reference segmentation, same shape.
        label: the class evaluated one-vs-rest.
        prob: probability map of ``label`` (same shape) for the AUC, or None (AUC = NaN).
        fov: optional field-of-view mask; only pixels where it is nonzero count.
        with_cldice: also compute clDice.
        cldice_per_slice: clDice skeletons per (Y, X) slice (True) or in 3D (False).
    """
    pred, ref = pred_seg == label, ref_seg == label
    counts = confusion_counts(pred, ref, fov)
    out = {"dice": dice(counts), "sensitivity": sensitivity(counts),
           "specificity": specificity(counts), "accuracy": accuracy(counts),
           "auc": pixel_auc(prob, ref, fov) if prob is not None else float("nan")}
    if with_cldice:
        out["cldice"] = cl_dice(pred, ref, fov, cldice_per_slice)
    out.update({k: float(v) for k, v in counts.items()})
    return out


def case_metrics(pred_seg: np.ndarray, ref_seg: np.ndarray, labels: Iterable[int],
                 probs: Optional[np.ndarray] = None, fov: Optional[np.ndarray] = None,
                 cldice_labels: Iterable[int] = (), cldice_per_slice: bool = True
                 ) -> Dict[int, Dict[str, float]]:
    """:func:`label_metrics` for each label.

    Args:
        pred_seg: integer predicted segmentation, (Z, Y, X) or (Y, X).
        ref_seg: integer reference segmentation, same shape.
        labels: the labels to evaluate.
        probs: (K, *S) softmax probabilities (``probs[k]`` is class k), or None.
        fov: optional field-of-view mask, same shape as the segmentations.
        cldice_labels: labels that also get clDice.
        cldice_per_slice: see :func:`label_metrics`.
    """
    cldice_labels = {int(k) for k in cldice_labels}
    return {int(k): label_metrics(pred_seg, ref_seg, int(k), None if probs is None else probs[k], fov,
                                  int(k) in cldice_labels, cldice_per_slice) for k in labels}
