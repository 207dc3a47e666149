"""An ACDC-like raw 3D dataset for the whole-case benchmark (only its shapes matter): ACDC's
geometry (about 10 slices of 256 x 216 at 10 x 1.5 x 1.5 mm, 4 labels) with the demo dataset's
synthetic content (:mod:`dataset_conversion.demo_dataset`) plus the organ's rim as a third label.
"""
import os
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np
from scipy.ndimage import binary_erosion

from dataset_conversion import synthetic
from dataset_conversion.common import (atomic_dataset, dataset_folder_name, get_raw_root, make_dirs,
                                       write_dataset_json)

DATASET_NAME = "WholeCaseACDCLike"
LABELS = {"background": 0, "organ": 1, "lesion": 2, "rim": 3}
SLICES = 10
SHAPE = (256, 216)
SPACING = (10.0, 1.5, 1.5)  # (z, y, x) mm, numpy order


def make_case(seed: int, index: int, slices: int, shape: Sequence[int],
              spacing: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """One deterministic (image float32, labels uint8) pair of shape (slices, *shape)."""
    rng = np.random.default_rng([seed, index])
    full = (slices, *shape)
    coords = synthetic.grid(full, tuple(spacing))
    extent = np.asarray(full) * np.asarray(spacing)
    body, labels = synthetic.make_organ_labels(rng, coords, extent)
    image = synthetic.make_organ_image(rng, coords, extent, body, labels)
    organ = labels == 1
    labels[organ & ~binary_erosion(organ, np.ones((1, 3, 3), bool))] = LABELS["rim"]
    return image, labels


def generate(raw_root: os.PathLike, dataset_id: int, num_train: int, num_test: int, *,
             slices: int = SLICES, shape: Sequence[int] = SHAPE,
             spacing: Sequence[float] = SPACING, seed: int = 0) -> Path:
    """Write ``DatasetNNN_WholeCaseACDCLike`` (imagesTr/labelsTr/imagesTs, 3D NIfTI) into
    ``raw_root``; returns its folder."""
    root = get_raw_root(raw_root)
    name = dataset_folder_name(dataset_id, DATASET_NAME)
    with atomic_dataset(root, name, overwrite=True) as tmp:
        dirs = make_dirs(tmp, ["imagesTr", "labelsTr", "imagesTs"])
        for index in range(num_train + num_test):
            image, labels = make_case(seed, index, slices, shape, spacing)
            split = "Tr" if index < num_train else "Ts"
            synthetic.write_nifti(image, tuple(spacing), dirs["images" + split] / f"case_{index:03d}_0000.nii.gz")
            if split == "Tr":
                synthetic.write_nifti(labels, tuple(spacing), dirs["labelsTr"] / f"case_{index:03d}.nii.gz")
        write_dataset_json(tmp, {"0": "cineMRI"}, LABELS, num_train, ".nii.gz",
                           dataset_name=DATASET_NAME, license="CC0 (synthetic)",
                           description=f"ACDC-like synthetic volumes, {slices} x "
                                       f"{shape[0]} x {shape[1]}, spacing {tuple(spacing)} mm")
    return root / name
