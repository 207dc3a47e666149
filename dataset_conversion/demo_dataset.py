"""Small, deterministic synthetic dataset for the demo and the tests (2D or 3D NIfTI).

Each case is a noisy "body" ellipse holding a rotated "organ" ellipse (label 1) with a "lesion" blob
(label 2) inside it, on anisotropic voxels, with a smooth texture, partial-volume blur, a smooth
multiplicative bias field and Gaussian noise. Contrast-to-noise ratio is about 5 between neighbouring
tissues and objects are at least ~16 px across, so a tiny network learns it in minutes on a CPU.
"""
import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

from dataset_conversion.common import (ConversionError, atomic_dataset, dataset_folder_name, get_raw_root,
                                       make_dirs, write_dataset_json)

logger = logging.getLogger(__name__)

LABELS = {"background": 0, "organ": 1, "lesion": 2}
# tissue means: outside body, body, organ, lesion (noise std NOISE_STD)
MEANS = (0.0, 45.0, 110.0, 180.0)
NOISE_STD = 10.0
# numpy axis order: 2D (y, x), 3D (z, y, x)
SPACING = {2: (1.25, 1.0), 3: (3.0, 1.0, 1.0)}
SIZE_RANGE = {2: ((96, 160), (96, 192)), 3: ((24, 40), (64, 96), (64, 96))}
DEFAULTS = {2: dict(dataset_id=990, num_train=24, num_test=6), 3: dict(dataset_id=991, num_train=8, num_test=3)}


def _grid(shape: Tuple[int, ...], spacing: Tuple[float, ...]) -> np.ndarray:
    """Physical coordinates (mm) relative to the image centre, shape (D, *shape)."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def _ellipsoid(coords: np.ndarray, center: np.ndarray, semi: np.ndarray, angle: float = 0.0) -> np.ndarray:
    """Boolean ellipsoid, rotated by ``angle`` in the last two (y, x) axes."""
    d = coords - center.reshape(-1, *([1] * (coords.ndim - 1)))
    c, s = np.cos(angle), np.sin(angle)
    d[-2], d[-1] = c * d[-2] - s * d[-1], s * d[-2] + c * d[-1]
    return sum((d[i] / semi[i]) ** 2 for i in range(len(semi))) <= 1.0


def _make_labels(rng: np.random.Generator, coords: np.ndarray, extent: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Return (body mask, label map) for one case; label map 0 background, 1 organ, 2 lesion."""
    semi = rng.uniform(0.3, 0.4, size=len(extent)) * extent.min()
    room = np.maximum(extent / 2 - semi.max() - 5.0, 0.0)
    center = rng.uniform(-0.5, 0.5, size=len(extent)) * room
    organ = _ellipsoid(coords, center, semi, rng.uniform(0, np.pi))
    r = rng.uniform(0.42, 0.55) * semi.min()
    direction = rng.normal(size=len(extent))
    direction /= np.linalg.norm(direction)
    lesion_center = center + direction * rng.uniform(0, 0.6) * (semi.min() - r)
    second = lesion_center + rng.normal(size=len(extent)) / np.sqrt(len(extent)) * 0.6 * r
    lesion = _ellipsoid(coords, lesion_center, np.full(len(extent), r))
    lesion |= _ellipsoid(coords, second, np.full(len(extent), 0.6 * r))
    body = _ellipsoid(coords, np.zeros(len(extent)), 0.47 * extent)
    labels = np.zeros(coords.shape[1:], dtype=np.uint8)
    labels[organ] = 1
    labels[lesion] = 2
    return body, labels


def _make_image(rng: np.random.Generator, coords: np.ndarray, extent: np.ndarray, body: np.ndarray,
                labels: np.ndarray) -> np.ndarray:
    """Smooth tissue intensities x bias field + Gaussian noise, float32 with the shape of ``labels``."""
    tissue = np.where(labels > 0, labels + 1, body.astype(np.uint8))  # 0 outside, 1 body, 2 organ, 3 lesion
    img = np.asarray(MEANS, dtype=np.float64)[tissue]
    texture = gaussian_filter(rng.normal(size=img.shape), 4.0)
    img += 6.0 * texture / texture.std() * (tissue > 0)
    img = gaussian_filter(img, 0.8)  # partial-volume blur
    norm = coords / (extent / 2).reshape(-1, *([1] * labels.ndim))  # (D, *shape), in [-1, 1]
    direction = rng.normal(size=len(extent))
    ramp = np.tensordot(direction / np.linalg.norm(direction), norm, axes=1)  # (*shape)
    bias = 1.0 + rng.uniform(0.05, 0.1) * ramp - 0.05 * (norm ** 2).mean(0)
    img = img * bias + rng.normal(0.0, NOISE_STD, size=img.shape)
    return img.astype(np.float32)


def _make_case(seed: int, index: int, dim: int) -> Tuple[np.ndarray, np.ndarray, Tuple[float, ...]]:
    """One deterministic case: (image float32, labels uint8, spacing), arrays in numpy (z,) y, x order."""
    rng = np.random.default_rng([seed, index])
    shape = tuple(int(rng.integers(lo, hi + 1)) for lo, hi in SIZE_RANGE[dim])
    spacing = SPACING[dim]
    coords = _grid(shape, spacing)  # (D, *shape)
    extent = np.asarray(shape) * np.asarray(spacing)
    body, labels = _make_labels(rng, coords, extent)
    return _make_image(rng, coords, extent, body, labels), labels, spacing


def _write_nifti(arr: np.ndarray, spacing: Tuple[float, ...], path: Path) -> None:
    """Write a (y, x) or (z, y, x) array as a 2D or 3D NIfTI; SimpleITK spacing is (x, y[, z])."""
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    sitk.WriteImage(img, str(path), True)


def generate_demo_dataset(raw_root: Optional[os.PathLike] = None, dataset_id: Optional[int] = None, dim: int = 2,
                          num_train: Optional[int] = None, num_test: Optional[int] = None, seed: int = 0,
                          overwrite: bool = False) -> Path:
    """Write ``DatasetNNN_Demo2D`` (dim=2) or ``DatasetNNN_Demo3D`` (dim=3) into nnUNet_raw.

    Files are ``imagesTr/demo_XXX_0000.nii.gz`` (float32, one channel), ``labelsTr/demo_XXX.nii.gz`` (uint8:
    0 background, 1 organ, 2 lesion) and the same under ``imagesTs``/``labelsTs``. 2D cases are true 2D
    NIfTI files (SimpleITK and nnU-Net read them as 2D, so nnU-Net plans only "2d"), spacing (x, y) =
    (1.0, 1.25) mm, sizes 96-160 x 96-192 px; 3D cases have spacing (x, y, z) = (1.0, 1.0, 3.0) mm and
    24-40 slices of 64-96 x 64-96 px.

    Args:
        raw_root: nnUNet_raw folder (default: the ``nnUNet_raw`` environment variable).
        dataset_id: nnU-Net id (default 990 for 2D, 991 for 3D).
        dim: 2 or 3.
        num_train: training cases (default 24 for 2D, 8 for 3D).
        num_test: test cases (default 6 for 2D, 3 for 3D).
        seed: random seed; the same seed gives byte-identical arrays.
        overwrite: replace an existing dataset of the same name.

    Returns:
        The dataset folder.
    """
    if dim not in (2, 3):
        raise ConversionError(f"dim must be 2 or 3, got {dim}")
    defaults = DEFAULTS[dim]
    dataset_id = defaults["dataset_id"] if dataset_id is None else dataset_id
    num_train = defaults["num_train"] if num_train is None else num_train
    num_test = defaults["num_test"] if num_test is None else num_test
    if num_train < 1 or num_test < 0:
        raise ConversionError(f"need num_train >= 1 and num_test >= 0, got {num_train}, {num_test}")
    root = get_raw_root(raw_root)
    logger.info("generating %d training and %d test %dD demo cases (seed %d)", num_train, num_test, dim, seed)
    with atomic_dataset(root, dataset_folder_name(dataset_id, f"Demo{dim}D"), overwrite) as tmp:
        dirs = make_dirs(tmp, ["imagesTr", "labelsTr", "imagesTs", "labelsTs"])
        for index in range(num_train + num_test):
            image, labels, spacing = _make_case(seed, index, dim)
            split = "Tr" if index < num_train else "Ts"
            _write_nifti(image, spacing, dirs["images" + split] / f"demo_{index:03d}_0000.nii.gz")
            _write_nifti(labels, spacing, dirs["labels" + split] / f"demo_{index:03d}.nii.gz")
        write_dataset_json(tmp, {"0": "synthetic"}, LABELS, num_train, ".nii.gz",
                           dataset_name=f"Demo{dim}D", license="CC0 (synthetic)",
                           description=f"nnsam2 synthetic {dim}D demo dataset, seed {seed}")
    return root / dataset_folder_name(dataset_id, f"Demo{dim}D")


def main(argv=None) -> int:
    """CLI: ``nnsam2_generate_demo_dataset [-o RAW] [--dim 2|3] [-d ID] [--overwrite]``."""
    p = argparse.ArgumentParser(description="Write the synthetic nnsam2 demo dataset into nnUNet_raw.")
    p.add_argument("-o", "--output", type=Path, default=None, help="nnUNet_raw folder (default: $nnUNet_raw)")
    p.add_argument("-d", "--dataset-id", type=int, default=None, help="dataset id (default 990 for 2D, 991 for 3D)")
    p.add_argument("--dim", type=int, choices=(2, 3), default=2)
    p.add_argument("--kind", choices=("organ", "context"), default="organ",
                   help="organ: organ + lesion (2D or 3D); context: 3D tubes vs balls that only "
                        "neighbouring slices tell apart (for 2d_mem; default id 992)")
    p.add_argument("--num-train", type=int, default=None)
    p.add_argument("--num-test", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of the same name")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.kind == "context":
            from dataset_conversion.context_dataset import DEFAULT_ID, generate_context_dataset
            counts = {k: v for k, v in (("num_train", args.num_train), ("num_test", args.num_test))
                      if v is not None}
            out = generate_context_dataset(args.output, args.dataset_id or DEFAULT_ID, seed=args.seed,
                                           overwrite=args.overwrite, **counts)
        else:
            out = generate_demo_dataset(args.output, args.dataset_id, args.dim, args.num_train,
                                        args.num_test, args.seed, args.overwrite)
    except (ConversionError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
