"""DRIVE retinal vessel segmentation (Staal et al., IEEE TMI 2004) -> nnU-Net raw dataset 114.

Input layout (``DRIVE.zip`` from https://drive.grand-challenge.org/)::

    SRC/training/images/21_training.tif, SRC/training/1st_manual/21_manual1.gif,
        SRC/training/mask/21_training_mask.gif   (cases 21-40)
    SRC/test/images/01_test.tif, SRC/test/1st_manual/01_manual1.gif, SRC/test/mask/01_test_mask.gif   (01-20)

Cases ``drive_NN`` get three PNG channel files (R, G, B; nnU-Net's NaturalImage2DIO). Labels are
0 background, 1 vessel and 2 ``ignore`` for every pixel outside the field-of-view (FOV) mask, in
labelsTr and labelsTs alike, so nnU-Net neither trains nor evaluates outside the FOV. The FOV masks
themselves are kept as 0/1 PNGs in ``fovTr/`` and ``fovTs/``. Test cases without ``1st_manual`` only get
imagesTs and fovTs.
"""
import logging
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from dataset_conversion.common import (ConversionError, atomic_dataset, base_parser, dataset_folder_name,
                                       get_raw_root, make_dirs, require_dir, run_cli, write_dataset_json)
from dataset_conversion.image_io import check_same_shape, check_values, read_pil, write_channels_png, write_png

logger = logging.getLogger(__name__)

NAME = "DRIVE"
LABELS = {"background": 0, "vessel": 1, "ignore": 2}
IMAGE_RE = re.compile(r"(\d+)_(training|test)\.tif")


def _read_binary(path: Path, reference: np.ndarray, image_path: Path) -> np.ndarray:
    """A 0/255 GIF mask as bool (H, W), checked against the image grid."""
    mask = read_pil(path, "L")
    check_same_shape(reference, mask, image_path, path)
    check_values(mask, (0, 255), path)
    return mask > 0


def make_label(vessels: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """uint8 (H, W): 1 vessel, 0 background, ``ignore`` outside the FOV."""
    label = vessels.astype(np.uint8)
    label[~fov] = LABELS["ignore"]
    return label


def _convert_split(split_dir: Path, dirs: Dict[str, Path], suffix: str, require_labels: bool) -> List[str]:
    """Convert ``training/`` (suffix "Tr") or ``test/`` (suffix "Ts"); returns case ids."""
    image_dir = require_dir(split_dir / "images", f"DRIVE {split_dir.name} images folder")
    has_manual = (split_dir / "1st_manual").is_dir() or require_labels
    case_ids = []
    for image_path in sorted(image_dir.iterdir()):
        match = IMAGE_RE.fullmatch(image_path.name)
        if match is None:
            continue
        num, case_id = match.group(1), f"drive_{match.group(1)}"
        image = read_pil(image_path, "RGB")  # (H, W, 3)
        fov = _read_binary(split_dir / "mask" / f"{num}_{match.group(2)}_mask.gif", image, image_path)
        write_channels_png(image, dirs["images" + suffix], case_id)
        write_png(fov.astype(np.uint8), dirs["fov" + suffix] / f"{case_id}.png")
        if has_manual:
            manual_path = split_dir / "1st_manual" / f"{num}_manual1.gif"
            if not manual_path.is_file():
                raise ConversionError(f"missing label {manual_path} for image {image_path}")
            vessels = _read_binary(manual_path, image, image_path)
            write_png(make_label(vessels, fov), dirs["labels" + suffix] / f"{case_id}.png")
        case_ids.append(case_id)
        logger.debug("converted %s", image_path)
    if not case_ids:
        raise ConversionError(f"no NN_{split_dir.name}.tif images found in {image_dir}")
    return case_ids


def convert_drive(src: os.PathLike, raw_root: Optional[os.PathLike] = None, dataset_id: int = 114,
                  overwrite: bool = False) -> Path:
    """Convert DRIVE into ``nnUNet_raw/Dataset114_DRIVE`` (PNG, ignore label outside the FOV, fovTr/fovTs).

    Args:
        src: the unzipped DRIVE folder holding ``training/`` and optionally ``test/``.
        raw_root: nnUNet_raw folder (default: the ``nnUNet_raw`` environment variable).
        dataset_id: nnU-Net dataset id.
        overwrite: replace an existing dataset of the same name.

    Returns:
        The dataset folder.
    """
    src = Path(src)
    require_dir(src / "training", "DRIVE training folder")
    root = get_raw_root(raw_root)
    folder_name = dataset_folder_name(dataset_id, NAME)
    with atomic_dataset(root, folder_name, overwrite) as tmp:
        dirs = make_dirs(tmp, ["imagesTr", "labelsTr", "fovTr", "imagesTs", "labelsTs", "fovTs"])
        train_ids = _convert_split(src / "training", dirs, "Tr", require_labels=True)
        if (src / "test").is_dir():
            _convert_split(src / "test", dirs, "Ts", require_labels=False)
        write_dataset_json(tmp, {"0": "R", "1": "G", "2": "B"}, LABELS, len(train_ids), ".png", dataset_name=NAME,
                           reference="https://drive.grand-challenge.org/",
                           license="research use; cite Staal et al., IEEE TMI 2004",
                           description="DRIVE fundus vessels (1st_manual); label 2 = ignore outside the FOV "
                                       "(FOV masks in fovTr/, fovTs/)")
    return root / folder_name


def main(argv=None) -> int:
    """CLI ``nnsam2_convert_drive -i DRIVE [-d 114] [--overwrite]``."""
    args = base_parser("Convert DRIVE (training/ and test/) to nnU-Net raw format.", default_id=114).parse_args(argv)
    return run_cli(convert_drive, args)


if __name__ == "__main__":
    sys.exit(main())
