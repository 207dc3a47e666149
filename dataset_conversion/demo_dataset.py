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

from dataset_conversion.common import (ConversionError, atomic_dataset, dataset_folder_name, get_raw_root,
                                       make_dirs, write_dataset_json)
from dataset_conversion.synthetic import grid, make_organ_image, make_organ_labels, write_nifti

logger = logging.getLogger(__name__)

LABELS = {"background": 0, "organ": 1, "lesion": 2}
# numpy axis order: 2D (y, x), 3D (z, y, x)
SPACING = {2: (1.25, 1.0), 3: (3.0, 1.0, 1.0)}
SIZE_RANGE = {2: ((96, 160), (96, 192)), 3: ((24, 40), (64, 96), (64, 96))}
DEFAULTS = {2: dict(dataset_id=990, num_train=24, num_test=6), 3: dict(dataset_id=991, num_train=8, num_test=3)}


def _make_case(seed: int, index: int, dim: int) -> Tuple[np.ndarray, np.ndarray, Tuple[float, ...]]:
    """One deterministic case: (image float32, labels uint8, spacing), arrays in numpy (z,) y, x order."""
    rng = np.random.default_rng([seed, index])
    shape = tuple(int(rng.integers(lo, hi + 1)) for lo, hi in SIZE_RANGE[dim])
    spacing = SPACING[dim]
    coords = grid(shape, spacing)  # (D, *shape)
    extent = np.asarray(shape) * np.asarray(spacing)
    body, labels = make_organ_labels(rng, coords, extent)
    return make_organ_image(rng, coords, extent, body, labels), labels, spacing


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
            write_nifti(image, spacing, dirs["images" + split] / f"demo_{index:03d}_0000.nii.gz")
            write_nifti(labels, spacing, dirs["labels" + split] / f"demo_{index:03d}.nii.gz")
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
