"""Synapse / BTCV multi-organ abdomen CT (MICCAI 2015 "Beyond the Cranial Vault") -> nnU-Net raw dataset 111.

Input layout (``RawData.zip`` from https://www.synapse.org/#!Synapse:syn3193805/wiki/217789)::

    SRC/RawData/Training/img/img0001.nii.gz ... img0040.nii.gz   (30 cases)
    SRC/RawData/Training/label/label0001.nii.gz ...
    SRC/RawData/Testing/img/img0061.nii.gz ...                   (20 unlabelled cases, optional)

Cases are named ``caseNNNN`` (as in TransUNet). ``protocol="btcv13"`` keeps the 13 BTCV organs;
``protocol="synapse8"`` is the TransUNet/SAMed protocol: 8 organs relabelled 1 aorta, 2 gallbladder,
3 left kidney, 4 right kidney, 5 liver, 6 pancreas, 7 spleen, 8 stomach (other organs -> background) and
a one-fold ``splits_final.json`` training on 18 cases and validating on TransUNet's 12 test cases.
"""
import logging
import os
import re
import sys
from pathlib import Path
from typing import List, Optional

import SimpleITK as sitk

from dataset_conversion.common import (ConversionError, atomic_dataset, base_parser, dataset_folder_name,
                                       get_raw_root, make_dirs, require_dir, run_cli, write_dataset_json,
                                       write_splits)
from dataset_conversion.image_io import check_same_geometry, check_values, copy_file, read_sitk, write_label_sitk

logger = logging.getLogger(__name__)

BTCV_LABELS = {"background": 0, "spleen": 1, "right_kidney": 2, "left_kidney": 3, "gallbladder": 4,
               "esophagus": 5, "liver": 6, "stomach": 7, "aorta": 8, "inferior_vena_cava": 9,
               "portal_and_splenic_vein": 10, "pancreas": 11, "right_adrenal_gland": 12, "left_adrenal_gland": 13}
SYNAPSE8_ORGANS = ["aorta", "gallbladder", "left_kidney", "right_kidney", "liver", "pancreas", "spleen", "stomach"]
SYNAPSE8_LABELS = {"background": 0, **{organ: i + 1 for i, organ in enumerate(SYNAPSE8_ORGANS)}}
# TransUNet lists/lists_Synapse/test_vol.txt
SYNAPSE8_TEST = ["0008", "0022", "0038", "0036", "0032", "0002", "0029", "0003", "0001", "0004", "0025", "0035"]
PROTOCOLS = {"btcv13": "Synapse", "synapse8": "Synapse8"}
IMG_RE = re.compile(r"img(\d{4})\.nii\.gz")


def _raw_data_dir(src: Path) -> Path:
    """Accept the folder holding ``RawData/`` or ``RawData/`` itself."""
    raw = src / "RawData" if (src / "RawData").is_dir() else src
    require_dir(raw / "Training" / "img", "Synapse RawData/Training/img folder")
    return raw


def _numbers(img_dir: Path) -> List[str]:
    """Four-digit case numbers of ``imgNNNN.nii.gz`` files, sorted."""
    return sorted(m.group(1) for f in img_dir.iterdir() if (m := IMG_RE.fullmatch(f.name)))


def _convert_training(train_dir: Path, dirs: dict, mapping: Optional[dict]) -> List[str]:
    """Copy images and write (remapped) labels of RawData/Training; returns case ids."""
    case_ids = []
    for num in _numbers(train_dir / "img"):
        image_path = train_dir / "img" / f"img{num}.nii.gz"
        label_path = train_dir / "label" / f"label{num}.nii.gz"
        if not label_path.is_file():
            raise ConversionError(f"missing label {label_path} for image {image_path}")
        image, label = read_sitk(image_path), read_sitk(label_path)
        check_same_geometry(image, label, image_path, label_path)
        check_values(sitk.GetArrayViewFromImage(label), BTCV_LABELS.values(), label_path)
        copy_file(image_path, dirs["imagesTr"] / f"case{num}_0000.nii.gz")
        write_label_sitk(label, dirs["labelsTr"] / f"case{num}.nii.gz", mapping)
        case_ids.append(f"case{num}")
        logger.debug("converted %s", image_path)
    if not case_ids:
        raise ConversionError(f"no imgNNNN.nii.gz files found in {train_dir / 'img'}")
    return case_ids


def _convert_testing(test_dir: Path, images_dir: Path) -> None:
    """Copy the unlabelled RawData/Testing images (checked to be readable) into imagesTs."""
    for num in _numbers(test_dir / "img"):
        read_sitk(test_dir / "img" / f"img{num}.nii.gz")
        copy_file(test_dir / "img" / f"img{num}.nii.gz", images_dir / f"case{num}_0000.nii.gz")


def synapse8_split(case_ids: List[str]) -> List[dict]:
    """TransUNet's fixed split as one nnU-Net fold: train on 18 cases, validate on the 12 test cases."""
    val = [f"case{n}" for n in sorted(SYNAPSE8_TEST)]
    missing = [c for c in val if c not in case_ids]
    if missing:
        raise ConversionError(f"the synapse8 protocol needs test cases {missing}, not found in RawData/Training")
    return [{"train": [c for c in case_ids if c not in val], "val": val}]


def convert_synapse(src: os.PathLike, raw_root: Optional[os.PathLike] = None, dataset_id: int = 111,
                    overwrite: bool = False, protocol: str = "btcv13") -> Path:
    """Convert BTCV RawData into ``nnUNet_raw/Dataset111_Synapse`` (or ``..._Synapse8`` for ``synapse8``).

    Args:
        src: the unzipped folder holding ``RawData/`` (or ``RawData`` itself).
        raw_root: nnUNet_raw folder (default: the ``nnUNet_raw`` environment variable).
        dataset_id: nnU-Net dataset id.
        overwrite: replace an existing dataset of the same name.
        protocol: "btcv13" (13 organs, nnU-Net's random 5 folds) or "synapse8" (TransUNet/SAMed 8 organs,
            fixed 18/12 split written to ``splits_final.json``).

    Returns:
        The dataset folder.
    """
    if protocol not in PROTOCOLS:
        raise ConversionError(f"unknown protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}")
    raw = _raw_data_dir(Path(src))
    eight = protocol == "synapse8"
    mapping = {BTCV_LABELS[o]: SYNAPSE8_LABELS[o] for o in SYNAPSE8_ORGANS} if eight else None
    labels = SYNAPSE8_LABELS if eight else BTCV_LABELS
    root = get_raw_root(raw_root)
    folder_name = dataset_folder_name(dataset_id, PROTOCOLS[protocol])
    with atomic_dataset(root, folder_name, overwrite) as tmp:
        dirs = make_dirs(tmp, ["imagesTr", "labelsTr", "imagesTs"])
        case_ids = _convert_training(raw / "Training", dirs, mapping)
        if (raw / "Testing" / "img").is_dir():
            _convert_testing(raw / "Testing", dirs["imagesTs"])
        if eight:
            write_splits(tmp, synapse8_split(case_ids))
        write_dataset_json(tmp, {"0": "CT"}, labels, len(case_ids), ".nii.gz", dataset_name=PROTOCOLS[protocol],
                           reference="https://www.synapse.org/#!Synapse:syn3193805/wiki/217789",
                           license="see Synapse syn3193805 (research use, registration required)",
                           description=f"BTCV abdomen CT, protocol {protocol}")
    return root / folder_name


def main(argv=None) -> int:
    """CLI ``nnsam2_convert_synapse -i BTCV_FOLDER [--protocol btcv13|synapse8] [-d 111] [--overwrite]``."""
    p = base_parser("Convert Synapse/BTCV abdomen CT (RawData) to nnU-Net raw format.", default_id=111)
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="btcv13",
                   help="btcv13: all 13 organs; synapse8: TransUNet/SAMed 8 organs with the fixed 18/12 split")
    args = p.parse_args(argv)
    return run_cli(convert_synapse, args, protocol=args.protocol)


if __name__ == "__main__":
    sys.exit(main())
