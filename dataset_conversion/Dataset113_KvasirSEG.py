"""Kvasir-SEG polyp segmentation (Jha et al., MMM 2020) -> nnU-Net raw dataset 113.

Input layout (``kvasir-seg.zip`` from https://datasets.simula.no/kvasir-seg/)::

    SRC/images/<name>.jpg   (RGB, sizes vary)
    SRC/masks/<name>.jpg    (JPEG masks: values spread around 0 and 255 by compression)

Each image becomes case ``<name>`` (characters other than letters, digits, ``-`` and ``_`` replaced
by ``_``) with three PNG channel files ``_0000`` (R), ``_0001`` (G), ``_0002`` (B),
read by nnU-Net's NaturalImage2DIO; masks are thresholded at 128 into 0 background / 1 polyp. A mask
with many mid-grey pixels is rejected as not binary. ``test_list`` (a text file, one image name per line)
puts a fixed test set into imagesTs/labelsTs; without it every image is a training case.
"""
import logging
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set

import numpy as np

from dataset_conversion.common import (ConversionError, atomic_dataset, base_parser, dataset_folder_name,
                                       get_raw_root, make_dirs, require_dir, run_cli, write_dataset_json)
from dataset_conversion.image_io import (check_mostly_binary, check_same_shape, read_pil, sorted_files,
                                         write_channels_png, write_png)

logger = logging.getLogger(__name__)

NAME = "KvasirSEG"
LABELS = {"background": 0, "polyp": 1}
EXTENSIONS = ("*.jpg", "*.jpeg", "*.png")


def read_name_list(path: Path) -> Set[str]:
    """Image names (file stems) from a text file, one per line; blank lines and ``#`` comments skipped."""
    if not Path(path).is_file():
        raise ConversionError(f"split file not found: {path}")
    lines = (line.split("#")[0].strip() for line in Path(path).read_text().splitlines())
    return {Path(line).stem for line in lines if line}


def _mask_path(mask_dir: Path, image_path: Path) -> Path:
    """The mask with the image's stem (any accepted extension), or raise naming the image."""
    for pattern in EXTENSIONS:
        candidate = mask_dir / (image_path.stem + pattern[1:])
        if candidate.is_file():
            return candidate
    raise ConversionError(f"missing mask {mask_dir / (image_path.stem + '.jpg')} for image {image_path}")


def binarize_mask(gray: np.ndarray, path: Path) -> np.ndarray:
    """(H, W) grey JPEG mask -> uint8 {0, 1}; threshold 128 after checking the mask is nearly binary."""
    check_mostly_binary(gray, path)
    return (gray >= 128).astype(np.uint8)


def case_ids(image_paths: List[Path]) -> Dict[Path, str]:
    """{image: case id}: the file stem with every run of characters other than letters, digits,
    '-' and '_' replaced by '_' (nnU-Net's tools split names on spaces and dots); a clash refuses."""
    ids = {p: re.sub(r"[^A-Za-z0-9_-]+", "_", p.stem) for p in image_paths}
    by_id = {}
    for path, case in ids.items():
        if case in by_id:
            raise ConversionError(f"{path} and {by_id[case]} both become case {case!r} once "
                                  f"sanitised for nnU-Net; rename one of them")
        by_id[case] = path
    renamed = [p for p in image_paths if ids[p] != p.stem]
    if renamed:
        logger.info("%d image name(s) sanitised for nnU-Net, e.g. %r -> %r", len(renamed),
                    renamed[0].stem, ids[renamed[0]])
    return ids


def _convert_case(image_path: Path, case: str, mask_dir: Path, images_dir: Path,
                  labels_dir: Path) -> None:
    mask_path = _mask_path(mask_dir, image_path)
    image = read_pil(image_path, "RGB")  # (H, W, 3)
    mask = read_pil(mask_path, "L")  # (H, W)
    check_same_shape(image, mask, image_path, mask_path)
    write_channels_png(image, images_dir, case)
    write_png(binarize_mask(mask, mask_path), labels_dir / f"{case}.png")


def convert_kvasir(src: os.PathLike, raw_root: Optional[os.PathLike] = None, dataset_id: int = 113,
                   overwrite: bool = False, test_list: Optional[os.PathLike] = None) -> Path:
    """Convert Kvasir-SEG into ``nnUNet_raw/Dataset113_KvasirSEG`` (3 PNG channels, ``file_ending`` ".png").

    Args:
        src: the unzipped ``Kvasir-SEG`` folder holding ``images/`` and ``masks/``.
        raw_root: nnUNet_raw folder (default: the ``nnUNet_raw`` environment variable).
        dataset_id: nnU-Net dataset id.
        overwrite: replace an existing dataset of the same name.
        test_list: optional text file naming the test images (one per line, with or without extension).

    Returns:
        The dataset folder.
    """
    src = Path(src)
    image_dir = require_dir(src / "images", "Kvasir-SEG images folder")
    mask_dir = require_dir(src / "masks", "Kvasir-SEG masks folder")
    image_paths: List[Path] = sorted_files(image_dir, EXTENSIONS)
    if not image_paths:
        raise ConversionError(f"no .jpg images found in {image_dir}")
    test_names = read_name_list(Path(test_list)) if test_list is not None else set()
    unknown = test_names - {p.stem for p in image_paths}
    if unknown:
        raise ConversionError(f"{test_list} names images not in {image_dir}: {sorted(unknown)[:5]}")
    ids = case_ids(image_paths)
    root = get_raw_root(raw_root)
    folder_name = dataset_folder_name(dataset_id, NAME)
    with atomic_dataset(root, folder_name, overwrite) as tmp:
        dirs = make_dirs(tmp, ["imagesTr", "labelsTr", "imagesTs", "labelsTs"])
        for image_path in image_paths:
            split = "Ts" if image_path.stem in test_names else "Tr"
            _convert_case(image_path, ids[image_path], mask_dir, dirs["images" + split],
                          dirs["labels" + split])
            logger.debug("converted %s", image_path)
        write_dataset_json(tmp, {"0": "R", "1": "G", "2": "B"}, LABELS, len(image_paths) - len(test_names),
                           ".png", dataset_name=NAME, reference="https://datasets.simula.no/kvasir-seg/",
                           license="research and educational use; cite Jha et al., MMM 2020",
                           description="Kvasir-SEG colonoscopy polyps; RGB as 3 channels; masks thresholded at 128")
    return root / folder_name


def main(argv=None) -> int:
    """CLI ``nnsam2_convert_kvasir -i Kvasir-SEG [--test-list test.txt] [-d 113] [--overwrite]``."""
    p = base_parser("Convert Kvasir-SEG (images/ + masks/ JPEGs) to nnU-Net raw format.", default_id=113)
    p.add_argument("--test-list", type=Path, default=None,
                   help="text file with one test image name per line (-> imagesTs/labelsTs)")
    args = p.parse_args(argv)
    return run_cli(convert_kvasir, args, test_list=args.test_list)


if __name__ == "__main__":
    sys.exit(main())
