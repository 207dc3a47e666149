"""Drawing and writing helpers shared by the synthetic dataset generators.

Used by :mod:`dataset_conversion.demo_dataset` (organ + lesion, 2D or 3D),
:mod:`dataset_conversion.context_dataset` (tubes vs balls) and the whole-case benchmark's ACDC-like
volumes (:mod:`nnsam2.benchmark.whole_case.data`). Arrays are in numpy axis order, (y, x) or
(z, y, x), and spacings follow it; every random draw comes from the ``rng`` a caller passes in, in a
fixed order, so the same seed gives byte-identical arrays.
"""
from pathlib import Path
from typing import Tuple

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

# organ + lesion content: tissue means of outside body, body, organ, lesion; Gaussian noise std
ORGAN_MEANS = (0.0, 45.0, 110.0, 180.0)
ORGAN_NOISE_STD = 10.0


def grid(shape: Tuple[int, ...], spacing: Tuple[float, ...]) -> np.ndarray:
    """Physical coordinates (mm) relative to the image centre, shape (D, *shape)."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def ellipsoid(coords: np.ndarray, center: np.ndarray, semi: np.ndarray, angle: float = 0.0) -> np.ndarray:
    """Boolean ellipsoid on ``coords`` (from :func:`grid`) with semi-axes ``semi`` (mm), rotated by
    ``angle`` in the last two (y, x) axes."""
    d = coords - center.reshape(-1, *([1] * (coords.ndim - 1)))
    c, s = np.cos(angle), np.sin(angle)
    d[-2], d[-1] = c * d[-2] - s * d[-1], s * d[-2] + c * d[-1]
    return sum((d[i] / semi[i]) ** 2 for i in range(len(semi))) <= 1.0


def make_organ_labels(rng: np.random.Generator, coords: np.ndarray,
                      extent: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """A body ellipsoid holding a rotated organ ellipsoid with a two-blob lesion inside it.

    Args:
        rng: the case's generator (draws in a fixed order).
        coords: physical coordinates from :func:`grid`, shape (D, *shape).
        extent: the image's physical size (mm) per axis.

    Returns:
        (body mask bool, label map uint8: 0 background, 1 organ, 2 lesion).
    """
    semi = rng.uniform(0.3, 0.4, size=len(extent)) * extent.min()
    room = np.maximum(extent / 2 - semi.max() - 5.0, 0.0)
    center = rng.uniform(-0.5, 0.5, size=len(extent)) * room
    organ = ellipsoid(coords, center, semi, rng.uniform(0, np.pi))
    r = rng.uniform(0.42, 0.55) * semi.min()
    direction = rng.normal(size=len(extent))
    direction /= np.linalg.norm(direction)
    lesion_center = center + direction * rng.uniform(0, 0.6) * (semi.min() - r)
    second = lesion_center + rng.normal(size=len(extent)) / np.sqrt(len(extent)) * 0.6 * r
    lesion = ellipsoid(coords, lesion_center, np.full(len(extent), r))
    lesion |= ellipsoid(coords, second, np.full(len(extent), 0.6 * r))
    body = ellipsoid(coords, np.zeros(len(extent)), 0.47 * extent)
    labels = np.zeros(coords.shape[1:], dtype=np.uint8)
    labels[organ] = 1
    labels[lesion] = 2
    return body, labels


def make_organ_image(rng: np.random.Generator, coords: np.ndarray, extent: np.ndarray, body: np.ndarray,
                     labels: np.ndarray) -> np.ndarray:
    """The image for :func:`make_organ_labels`' output: tissue means :data:`ORGAN_MEANS` with a smooth
    texture and partial-volume blur, times a smooth bias field, plus Gaussian noise of std
    :data:`ORGAN_NOISE_STD`; float32 with the shape of ``labels``."""
    tissue = np.where(labels > 0, labels + 1, body.astype(np.uint8))  # 0 outside, 1 body, 2 organ, 3 lesion
    img = np.asarray(ORGAN_MEANS, dtype=np.float64)[tissue]
    texture = gaussian_filter(rng.normal(size=img.shape), 4.0)
    img += 6.0 * texture / texture.std() * (tissue > 0)
    img = gaussian_filter(img, 0.8)  # partial-volume blur
    norm = coords / (extent / 2).reshape(-1, *([1] * labels.ndim))  # (D, *shape), in [-1, 1]
    direction = rng.normal(size=len(extent))
    ramp = np.tensordot(direction / np.linalg.norm(direction), norm, axes=1)  # (*shape)
    bias = 1.0 + rng.uniform(0.05, 0.1) * ramp - 0.05 * (norm ** 2).mean(0)
    img = img * bias + rng.normal(0.0, ORGAN_NOISE_STD, size=img.shape)
    return img.astype(np.float32)


def write_nifti(arr: np.ndarray, spacing: Tuple[float, ...], path: Path) -> None:
    """Write a (y, x) or (z, y, x) array as a compressed 2D or 3D NIfTI with ``spacing`` in the same
    axis order (SimpleITK's spacing is (x, y[, z]))."""
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    sitk.WriteImage(img, str(path), True)
