"""Synthetic 3D dataset whose two classes look the same in every single slice.

Each case holds bright "tubes" (label 1: cylinders along the slice axis, constant radius over
many slices) and "balls" (label 2: spheres, whose cross-section grows and shrinks within a few
slices) with the same intensity and texture, inside a noisy body. Radii are drawn so that one
slice's disk sizes overlap between the classes: from a single slice a disk's class is a guess;
from its neighbours (does it persist? does its radius change?) it is plain. This is the dataset
on which ``2d_mem`` (SAM2's memory over neighbouring slices) must beat ``2d``.
"""
import logging
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter

from dataset_conversion.common import (ConversionError, atomic_dataset, dataset_folder_name,
                                       get_raw_root, make_dirs, write_dataset_json)
from dataset_conversion.synthetic import grid, write_nifti

logger = logging.getLogger(__name__)

LABELS = {"background": 0, "tube": 1, "ball": 2}
NAME = "Context3D"
DEFAULT_ID = 992
SPACING = (2.0, 1.0, 1.0)  # (z, y, x) mm
SLICES = (20, 28)
IN_PLANE = (64, 80)
TUBE_RADIUS = (4.0, 7.0)  # mm, constant along the tube
BALL_RADIUS = (5.0, 9.0)  # mm; cross-sections range from 0 to this
MEANS = (0.0, 50.0, 150.0)  # outside, body, object (both classes)
NOISE_STD = 12.0


def _objects(rng: np.random.Generator, shape, spacing) -> list:
    """Four non-overlapping objects, one per in-plane quadrant: two tubes and two balls."""
    extent = np.asarray(shape) * np.asarray(spacing)
    kinds = rng.permutation([1, 1, 2, 2])
    objects = []
    for quadrant, kind in enumerate(kinds):
        sy, sx = (1 if quadrant // 2 else -1), (1 if quadrant % 2 else -1)
        centre_yx = np.array([sy, sx]) * extent[1:] / 4 + rng.uniform(-3, 3, 2)
        if kind == 1:
            length = rng.uniform(0.6, 0.9) * extent[0]
            z0 = rng.uniform(-extent[0] / 2, extent[0] / 2 - length)
            objects.append((1, centre_yx, rng.uniform(*TUBE_RADIUS), (z0, z0 + length)))
        else:
            radius = rng.uniform(*BALL_RADIUS)
            zc = rng.uniform(-extent[0] / 2 + radius, extent[0] / 2 - radius)
            objects.append((2, centre_yx, radius, zc))
    return objects


def make_context_case(seed: int, index: int, slices: Tuple[int, int] = SLICES,
                      in_plane: Tuple[int, int] = IN_PLANE
                      ) -> Tuple[np.ndarray, np.ndarray, Tuple[float, ...]]:
    """One deterministic case: (image float32 (z, y, x), labels uint8, spacing); ``slices`` and
    ``in_plane`` are the ranges the case's size is drawn from (at least 10 slices: balls span up
    to 9)."""
    rng = np.random.default_rng([seed, index, 3])
    shape = (int(rng.integers(*slices, endpoint=True)),
             *(int(rng.integers(*in_plane, endpoint=True)) for _ in range(2)))
    z, y, x = grid(shape, SPACING)
    labels = np.zeros(shape, dtype=np.uint8)
    for kind, (cy, cx), radius, span in _objects(rng, shape, SPACING):
        r2 = (y - cy) ** 2 + (x - cx) ** 2
        if kind == 1:
            inside = (r2 <= radius ** 2) & (z >= span[0]) & (z <= span[1])
        else:
            inside = r2 + (z - span) ** 2 <= radius ** 2
        labels[inside] = kind
    extent = np.asarray(shape) * np.asarray(SPACING)
    body = (y / (0.48 * extent[1])) ** 2 + (x / (0.48 * extent[2])) ** 2 <= 1.0
    tissue = np.where(labels > 0, 2, body.astype(np.uint8))
    image = np.asarray(MEANS)[tissue]
    texture = gaussian_filter(rng.normal(size=shape), (0.5, 2.0, 2.0))
    image += 8.0 * texture / texture.std() * (tissue > 0)
    image = gaussian_filter(image, (0.3, 0.7, 0.7)) + rng.normal(0.0, NOISE_STD, size=shape)
    return image.astype(np.float32), labels, SPACING


def generate_context_dataset(raw_root: Optional[Path] = None, dataset_id: int = DEFAULT_ID,
                             num_train: int = 10, num_test: int = 4, seed: int = 0,
                             overwrite: bool = False, slices: Tuple[int, int] = SLICES,
                             in_plane: Tuple[int, int] = IN_PLANE) -> Path:
    """Write ``DatasetNNN_Context3D`` (NIfTI, one channel, labels tube/ball) into nnUNet_raw;
    ``slices`` / ``in_plane``: size ranges of the cases (smaller for tests)."""
    if num_train < 1 or num_test < 0:
        raise ConversionError(f"need num_train >= 1 and num_test >= 0, got {num_train}, {num_test}")
    if slices[0] < 10:
        raise ConversionError(f"cases need at least 10 slices (balls span up to 9), got {slices}")
    root = get_raw_root(raw_root)
    logger.info("generating %d training and %d test context cases (seed %d)", num_train,
                num_test, seed)
    with atomic_dataset(root, dataset_folder_name(dataset_id, NAME), overwrite) as tmp:
        dirs = make_dirs(tmp, ["imagesTr", "labelsTr", "imagesTs", "labelsTs"])
        for index in range(num_train + num_test):
            image, labels, spacing = make_context_case(seed, index, slices, in_plane)
            split = "Tr" if index < num_train else "Ts"
            write_nifti(image, spacing, dirs["images" + split] / f"ctx_{index:03d}_0000.nii.gz")
            write_nifti(labels, spacing, dirs["labels" + split] / f"ctx_{index:03d}.nii.gz")
        write_dataset_json(tmp, {"0": "synthetic"}, LABELS, num_train, ".nii.gz",
                           dataset_name=NAME, license="CC0 (synthetic)",
                           description=f"nnsam2 synthetic slice-context dataset, seed {seed}")
    return root / dataset_folder_name(dataset_id, NAME)
