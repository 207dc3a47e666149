"""ISBI 2012 EM neuronal membrane segmentation (Arganda-Carreras et al., Front. Neuroanat. 2015) -> dataset 112.

Accepted input layouts (https://imagej.net/events/isbi-2012-segmentation-challenge)::

    SRC/train-volume.tif, SRC/train-labels.tif [, SRC/test-volume.tif]   (30-page 512x512 TIFF stacks)
    SRC/images/0.png ... SRC/labels/0.png ...                            (the same stacks as per-slice PNGs)

Slices become 2D PNG cases ``isbi_NN`` (read by nnU-Net's NaturalImage2DIO). In the challenge labels
255 is cell interior and 0 is membrane; here the membrane becomes foreground class 1. Neighbouring
slices are correlated, so ``splits_final.json`` uses 5 contiguous blocks of slices, and
``holdout_last=N`` moves the last N labelled slices to imagesTs/labelsTs as a contiguous test block.
"""
import logging
import os
import re
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import tifffile

from dataset_conversion.common import (ConversionError, atomic_dataset, base_parser, block_splits,
                                       dataset_folder_name, get_raw_root, make_dirs, run_cli, write_dataset_json,
                                       write_splits)
from dataset_conversion.image_io import check_same_shape, check_values, read_pil, write_channels_png, write_png

logger = logging.getLogger(__name__)

NAME = "ISBI2012"
LABELS = {"background": 0, "membrane": 1}
MEMBRANE, CELL = 0, 255  # label values in the challenge files


def _read_tiff_stack(path: Path) -> np.ndarray:
    """Read a multi-page TIFF as (Z, H, W), or raise a ConversionError naming the file."""
    if not path.is_file():
        raise ConversionError(f"missing file: {path}")
    try:
        with tifffile.TiffFile(path) as tif:
            axes = tif.series[0].axes
            stack = tif.asarray()
    except Exception as e:  # tifffile raises many types on truncated or corrupt files
        raise ConversionError(f"cannot read {path} (corrupt or truncated?): {e}") from e
    stack = stack[None] if stack.ndim == 2 else stack  # (H, W) -> (1, H, W)
    if stack.ndim != 3 or "S" in axes:
        raise ConversionError(f"{path}: expected a stack of grayscale slices, got shape {stack.shape} ({axes})")
    return stack


def _read_png_stack(folder: Path) -> Tuple[List[Path], List[np.ndarray]]:
    """Slices ``N.png`` of ``folder`` in numeric order, as (paths, (H, W) arrays)."""
    paths = sorted((p for p in folder.glob("*.png") if re.fullmatch(r"\d+", p.stem)), key=lambda p: int(p.stem))
    if not paths:
        raise ConversionError(f"no N.png slices found in {folder}")
    return paths, [read_pil(p, "L") for p in paths]


def load_isbi(src: Path) -> Tuple[List[np.ndarray], List[np.ndarray], List[np.ndarray]]:
    """Return (train images, train labels, test images) as lists of (H, W) arrays from either layout."""
    if (src / "train-volume.tif").is_file():
        volume, labels = _read_tiff_stack(src / "train-volume.tif"), _read_tiff_stack(src / "train-labels.tif")
        if volume.shape != labels.shape:
            raise ConversionError(f"geometry mismatch (shape {volume.shape} vs {labels.shape}) between "
                                  f"{src / 'train-volume.tif'} and {src / 'train-labels.tif'}")
        check_values(labels, (MEMBRANE, CELL), src / "train-labels.tif")
        test = _read_tiff_stack(src / "test-volume.tif") if (src / "test-volume.tif").exists() else []
        return list(volume), list(labels), list(test)
    if (src / "images").is_dir():
        image_paths, images = _read_png_stack(src / "images")
        labels = []
        for path, image in zip(image_paths, images):
            label_path = src / "labels" / path.name
            if not label_path.is_file():
                raise ConversionError(f"missing label {label_path} for image {path}")
            label = read_pil(label_path, "L")
            check_same_shape(image, label, path, label_path)
            check_values(label, (MEMBRANE, CELL), label_path)
            labels.append(label)
        return images, labels, []
    raise ConversionError(f"{src} holds neither train-volume.tif nor an images/ folder of N.png slices "
                          f"(wrong -i folder?)")


def convert_isbi2012(src: os.PathLike, raw_root: Optional[os.PathLike] = None, dataset_id: int = 112,
                     overwrite: bool = False, holdout_last: int = 0, num_folds: int = 5) -> Path:
    """Convert ISBI 2012 into ``nnUNet_raw/Dataset112_ISBI2012`` (PNG, ``file_ending`` ".png").

    Args:
        src: folder with the challenge TIFF stacks or with ``images/`` and ``labels/`` PNG slices.
        raw_root: nnUNet_raw folder (default: the ``nnUNet_raw`` environment variable).
        dataset_id: nnU-Net dataset id.
        overwrite: replace an existing dataset of the same name.
        holdout_last: move the last N labelled slices to imagesTs/labelsTs (e.g. 10: train 0-19, test 20-29).
        num_folds: contiguous blocks in ``splits_final.json``.

    Returns:
        The dataset folder.
    """
    images, labels, test = load_isbi(Path(src))
    logger.info("read %d labelled and %d test slices from %s", len(images), len(test), src)
    if not 0 <= holdout_last < len(images) - num_folds + 1:
        raise ConversionError(f"holdout_last={holdout_last} leaves fewer than {num_folds} of {len(images)} "
                              f"labelled slices for training")
    num_train = len(images) - holdout_last
    root = get_raw_root(raw_root)
    folder_name = dataset_folder_name(dataset_id, NAME)
    with atomic_dataset(root, folder_name, overwrite) as tmp:
        dirs = make_dirs(tmp, ["imagesTr", "labelsTr", "imagesTs", "labelsTs"])
        case_ids = [f"isbi_{z:02d}" for z in range(len(images))]
        for z, (image, label) in enumerate(zip(images, labels)):
            split = "Tr" if z < num_train else "Ts"
            write_channels_png(image, dirs["images" + split], case_ids[z])
            write_png((label == MEMBRANE).astype(np.uint8), dirs["labels" + split] / f"{case_ids[z]}.png")
        for z, image in enumerate(test):
            write_channels_png(image, dirs["imagesTs"], f"isbi_test_{z:02d}")
        write_splits(tmp, block_splits(case_ids[:num_train], num_folds))
        write_dataset_json(tmp, {"0": "EM"}, LABELS, num_train, ".png", dataset_name=NAME,
                           reference="https://imagej.net/events/isbi-2012-segmentation-challenge",
                           license="research use; cite Cardona et al. 2010 and Arganda-Carreras et al. 2015",
                           description="ssTEM Drosophila VNC; foreground = membrane (0 in the challenge labels)")
    return root / folder_name


def main(argv=None) -> int:
    """CLI ``nnsam2_convert_isbi2012 -i ISBI_FOLDER [--holdout-last N] [-d 112] [--overwrite]``."""
    p = base_parser("Convert ISBI 2012 EM (TIFF stacks or PNG slices) to nnU-Net raw format.", default_id=112)
    p.add_argument("--holdout-last", type=int, default=0,
                   help="move the last N labelled slices to imagesTs/labelsTs (contiguous test block)")
    args = p.parse_args(argv)
    return run_cli(convert_isbi2012, args, holdout_last=args.holdout_last)


if __name__ == "__main__":
    sys.exit(main())
