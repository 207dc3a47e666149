"""ACDC cardiac cine-MRI (Bernard et al., IEEE TMI 2018) -> nnU-Net raw dataset 027.

Input layout (from https://www.creatis.insa-lyon.fr/Challenge/acdc/, unzipped)::

    SRC/training/patient001/patient001_frame01.nii.gz, patient001_frame01_gt.nii.gz, ..., Info.cfg, patient001_4d.nii.gz
    SRC/testing/patient101/...  (same; ``_gt`` files optional)

Each ED/ES frame becomes one case ``patientNNN_frameMM`` (images copied byte for byte, so spacing and
orientation are kept); the ``_4d`` files are ignored. Labels: 0 background, 1 RV cavity, 2 myocardium,
3 LV cavity. ``splits_final.json`` holds a 5-fold split grouped by patient (both frames of a patient in
one fold) and stratified by the pathology group read from ``Info.cfg``.
"""
import logging
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import SimpleITK as sitk

from dataset_conversion.common import (ConversionError, atomic_dataset, base_parser, dataset_folder_name,
                                       get_raw_root, make_dirs, require_dir, run_cli, write_dataset_json,
                                       write_splits)
from dataset_conversion.image_io import check_same_geometry, check_values, copy_file, read_sitk, write_label_sitk

logger = logging.getLogger(__name__)

NAME = "ACDC"
LABELS = {"background": 0, "RV": 1, "MLV": 2, "LVC": 3}
FRAME_RE = re.compile(r"(patient\d{3})_frame(\d{2})\.nii\.gz")


def _frames(split_dir: Path) -> List[Tuple[str, Path]]:
    """(case id, image path) of every ``patientNNN_frameMM.nii.gz`` below ``split_dir``, sorted."""
    cases = []
    for patient_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        for f in sorted(patient_dir.iterdir()):
            if FRAME_RE.fullmatch(f.name):
                cases.append((f.name[:-len(".nii.gz")], f))
    return cases


def _pathology(patient_dir: Path) -> str:
    """The ``Group:`` entry of ``Info.cfg`` (DCM, HCM, MINF, NOR, RV), or "unknown" without one."""
    cfg = patient_dir / "Info.cfg"
    if not cfg.is_file():
        logger.warning("no Info.cfg in %s; the split is not stratified for this patient", patient_dir)
        return "unknown"
    for line in cfg.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Group":
            return value.strip()
    return "unknown"


def patient_splits(case_ids: List[str], groups: Dict[str, str], num_folds: int = 5) -> List[Dict[str, List[str]]]:
    """5-fold split with all frames of a patient in one fold, patients dealt round-robin per pathology group.

    Args:
        case_ids: ``patientNNN_frameMM`` identifiers.
        groups: patient id -> pathology group.
    """
    patients = sorted({c.split("_")[0] for c in case_ids})
    if len(patients) < num_folds:
        raise ConversionError(f"need at least {num_folds} training patients for {num_folds} folds, got {len(patients)}")
    patients_by_group = defaultdict(list)
    for patient in patients:
        patients_by_group[groups.get(patient, "unknown")].append(patient)
    fold_of, k = {}, 0
    for group in sorted(patients_by_group):
        for patient in patients_by_group[group]:
            fold_of[patient] = k % num_folds
            k += 1
    splits = []
    for fold in range(num_folds):
        val = [c for c in case_ids if fold_of[c.split("_")[0]] == fold]
        splits.append({"train": [c for c in case_ids if c not in val], "val": val})
    return splits


def _convert_split(split_dir: Path, images_dir: Path, labels_dir: Path, require_labels: bool) -> List[str]:
    """Copy frames of one ACDC split; write labels when present (required for training). Returns case ids."""
    case_ids = []
    for case_id, image_path in _frames(split_dir):
        gt_path = image_path.with_name(case_id + "_gt.nii.gz")
        image = read_sitk(image_path)
        if gt_path.exists() or require_labels:
            if not gt_path.exists():
                raise ConversionError(f"missing label {gt_path} for image {image_path}")
            gt = read_sitk(gt_path)
            check_same_geometry(image, gt, image_path, gt_path)
            check_values(sitk.GetArrayViewFromImage(gt), LABELS.values(), gt_path)
            write_label_sitk(gt, labels_dir / f"{case_id}.nii.gz")
        copy_file(image_path, images_dir / f"{case_id}_0000.nii.gz")
        case_ids.append(case_id)
        logger.debug("converted %s", image_path)
    return case_ids


def convert_acdc(src: os.PathLike, raw_root: Optional[os.PathLike] = None, dataset_id: int = 27,
                 overwrite: bool = False) -> Path:
    """Convert ACDC into ``nnUNet_raw/Dataset027_ACDC`` (imagesTr, labelsTr, imagesTs, labelsTs, splits_final.json).

    Args:
        src: the unzipped ACDC folder holding ``training/`` (and optionally ``testing/``), or its parent.
        raw_root: nnUNet_raw folder (default: the ``nnUNet_raw`` environment variable).
        dataset_id: nnU-Net dataset id.
        overwrite: replace an existing dataset of the same name.

    Returns:
        The dataset folder.
    """
    src = Path(src)
    src = src / "database" if (src / "database" / "training").is_dir() else src  # the zip's top folder
    train_dir = require_dir(src / "training", "ACDC training folder")
    if not _frames(train_dir):
        raise ConversionError(f"no patientNNN_frameMM.nii.gz files found under {train_dir}")
    root = get_raw_root(raw_root)
    folder_name = dataset_folder_name(dataset_id, NAME)
    with atomic_dataset(root, folder_name, overwrite) as tmp:
        dirs = make_dirs(tmp, ["imagesTr", "labelsTr", "imagesTs", "labelsTs"])
        train_ids = _convert_split(train_dir, dirs["imagesTr"], dirs["labelsTr"], require_labels=True)
        if (src / "testing").is_dir():
            _convert_split(src / "testing", dirs["imagesTs"], dirs["labelsTs"], require_labels=False)
        groups = {p.name: _pathology(p) for p in train_dir.iterdir() if p.is_dir()}
        write_splits(tmp, patient_splits(train_ids, groups))
        write_dataset_json(tmp, {"0": "cineMRI"}, LABELS, len(train_ids), ".nii.gz", dataset_name=NAME,
                           reference="https://www.creatis.insa-lyon.fr/Challenge/acdc/",
                           license="see https://humanheart-project.creatis.insa-lyon.fr (research use)",
                           description="ACDC ED/ES frames; labels RV cavity, myocardium (MLV), LV cavity")
    return root / folder_name


def main(argv=None) -> int:
    """CLI ``nnsam2_convert_acdc -i ACDC_FOLDER [-d 27] [-o RAW] [--overwrite]``."""
    args = base_parser("Convert ACDC (training/ and testing/ patient folders) to nnU-Net raw format.",
                       default_id=27).parse_args(argv)
    return run_cli(convert_acdc, args)


if __name__ == "__main__":
    sys.exit(main())
