"""Simulated user clicks: for click-conditioned training and for interactive evaluation (NoC@Dice).

A click is ``(class, position)``: class 0 says "this is background", class k > 0 "this is label k".
Positions are integer voxel indices. Training clicks are returned as float32 rows ``(class, y, x)``,
the layout the prompt encoder consumes.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

ClickTuple = Tuple[int, Tuple[int, ...]]  # (class, voxel index); see click_coordinates.Click for files


def _inner_distance(mask: np.ndarray, spacing: Optional[Sequence[float]] = None) -> np.ndarray:
    """Euclidean distance of each mask voxel to the nearest non-mask voxel, the array border
    counting as non-mask (the mask is padded with one voxel of background before the transform)."""
    padded = np.pad(mask.astype(bool), 1)
    dist = ndimage.distance_transform_edt(padded, sampling=spacing)
    return dist[tuple(slice(1, -1) for _ in range(mask.ndim))]


def next_click(prediction: np.ndarray, reference: np.ndarray,
               spacing: Optional[Sequence[float]] = None) -> Optional[ClickTuple]:
    """The click a user would make next: the centre of the largest connected error region.

    Error voxels are ``prediction != reference`` (2D or 3D). Regions are connected with full
    connectivity (8 in 2D, 26 in 3D), so diagonal touches merge. The centre is the region voxel
    farthest from the region's border (maximum of its Euclidean distance transform, the array border
    counting as border; ``spacing`` is passed as ``sampling`` for anisotropic volumes). Ties (equal
    region sizes or equal distances) go to the first in C order, so the result is deterministic.

    Returns:
        ``(reference class at that voxel, position tuple)``, or None when there is no error.
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"shape mismatch: prediction {prediction.shape} vs reference {reference.shape}")
    errors = prediction != reference
    if not errors.any():
        return None
    structure = ndimage.generate_binary_structure(errors.ndim, errors.ndim)
    labels, _ = ndimage.label(errors, structure=structure)
    # Label ids follow C order of first appearance, so argmax's first-max rule breaks size ties.
    largest = int(np.bincount(labels.ravel())[1:].argmax()) + 1
    # Work on the region's bounding box only: cheap on large volumes, same distances.
    box = ndimage.find_objects(labels, max_label=largest)[largest - 1]
    dist = _inner_distance(labels[box] == largest, spacing)
    local = np.unravel_index(int(dist.argmax()), dist.shape)
    position = tuple(int(i + s.start) for i, s in zip(local, box))
    return int(reference[position]), position


def _choice(mask: np.ndarray, rng: np.random.Generator) -> Tuple[int, int]:
    """A uniformly drawn (y, x) among the nonzero pixels of ``mask`` (assumed non-empty)."""
    flat = np.flatnonzero(mask)
    y, x = np.unravel_index(int(flat[rng.integers(flat.size)]), mask.shape)
    return int(y), int(x)


def _positive_candidates(target: np.ndarray, cls: int) -> np.ndarray:
    """Pixels of ``cls`` at least half the class's maximum inner distance from its border: deep
    inside blobs, and still on the centre line of thin structures."""
    dist = _inner_distance(target == cls)
    return dist >= 0.5 * dist.max()


def _negative_candidates(background: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Background pixels in a band next to foreground (where users correct leaks); any background
    pixel when there is no foreground or the band is empty."""
    if not foreground.any():
        return background
    # Distance of every non-foreground pixel to the nearest foreground pixel (>= 1 off foreground).
    dist = ndimage.distance_transform_edt(~foreground)
    band = background & (dist <= max(2.0, 0.05 * max(background.shape)))
    return band if band.any() else background


def sample_training_clicks(target: np.ndarray, rng: np.random.Generator, max_clicks: int = 3,
                           ignore_label: Optional[int] = None) -> np.ndarray:
    """Random clicks for one 2D training patch: float32 rows ``(class, y, x)``.

    The number of clicks is uniform in ``1..max_clicks``. Each click is positive with probability
    0.5 when foreground exists (always when there is no background): a present foreground class
    drawn uniformly, then a pixel of it at least half its maximum distance from the class border.
    Otherwise it is negative (class 0): a background pixel within ``max(2, 5% of the patch side)``
    of foreground, any background pixel if there is no foreground. ``ignore_label`` pixels are
    never clicked. Returns an empty (0, 3) array when the patch has no usable pixel.
    """
    if target.ndim != 2:
        raise ValueError(f"expected a 2D (H, W) patch, got shape {target.shape}")
    valid = np.ones(target.shape, bool) if ignore_label is None else target != ignore_label
    foreground = valid & (target > 0)
    background = valid & (target == 0)
    if not (foreground.any() or background.any()):
        return np.zeros((0, 3), np.float32)
    classes = np.unique(target[foreground])
    n = int(rng.integers(1, max_clicks + 1))
    positives: Dict[int, np.ndarray] = {}  # candidate masks, computed only for classes drawn
    negatives: Optional[np.ndarray] = None
    clicks = np.zeros((n, 3), np.float32)
    for i in range(n):
        positive = classes.size > 0 and (not background.any() or rng.random() < 0.5)
        if positive:
            cls = int(classes[rng.integers(classes.size)])
            if cls not in positives:
                positives[cls] = _positive_candidates(target, cls)
            y, x = _choice(positives[cls], rng)
        else:
            cls = 0
            if negatives is None:
                negatives = _negative_candidates(background, foreground)
            y, x = _choice(negatives, rng)
        clicks[i] = (cls, y, x)
    return clicks


def error_click(prediction: np.ndarray, target: np.ndarray) -> Optional[np.ndarray]:
    """The second-round training click on the errors of a first pass (SAM-style iterative
    training): ``next_click`` on the 2D arrays as a float32 (1, 3) row ``(class, y, x)``;
    None when the prediction has no error."""
    if target.ndim != 2:
        raise ValueError(f"expected 2D (H, W) arrays, got shape {target.shape}")
    click = next_click(prediction, target)
    if click is None:
        return None
    cls, (y, x) = click
    return np.array([[cls, y, x]], np.float32)


def dice_per_class(prediction: np.ndarray, reference: np.ndarray,
                   labels: Sequence[int]) -> Dict[int, float]:
    """Dice of each foreground label; NaN for a label absent from both prediction and reference."""
    # Imported here: the evaluation package pulls in scikit-learn and file readers, which training
    # code using only the click samplers above does not need.
    from nnsam2.evaluation.thin_structures import confusion_counts, dice
    if prediction.shape != reference.shape:
        raise ValueError(f"shape mismatch: prediction {prediction.shape} vs reference {reference.shape}")
    return {int(k): dice(confusion_counts(prediction == k, reference == k)) for k in labels}


def mean_dice(prediction: np.ndarray, reference: np.ndarray, labels: Sequence[int]) -> float:
    """Mean of ``dice_per_class`` over labels, skipping NaN; NaN if every label is NaN."""
    values = np.array(list(dice_per_class(prediction, reference, labels).values()), float)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def clicks_to_reach(dice_after_clicks: Sequence[float], threshold: float, max_clicks: int) -> int:
    """NoC@threshold: the smallest number of clicks k whose Dice reaches ``threshold``.

    ``dice_after_clicks[k]`` is the Dice after k clicks (index 0: before any click); entries past
    ``max_clicks`` are not considered. If the threshold is never reached the result is
    ``max_clicks`` (the usual convention: NoC is capped at the click budget N, so failures count N).
    """
    for k, value in enumerate(dice_after_clicks[:max_clicks + 1]):
        if value >= threshold:
            return k
    return max_clicks
