"""BRATS 2013/2015 cases in DeepMedic's example layout (FLAIR + T1c, 5 classes) -> nnU-Net raw dataset 115.

Input layout (``examples/dataForExamples/brats2015TrainingData`` of github.com/deepmedic/deepmedic)::

    SRC/train/brats_2013_pat0005_1/Flair_subtrMeanDivStd.nii.gz
                                   T1c_subtrMeanDivStd.nii.gz
                                   OTMultiClass.nii.gz          (labels 0..4, stored as float32)
                                   brainmask.nii.gz             (only read with mask_background=True)
    SRC/validation/brats_2013_pat0003_1/...
    SRC/test/brats_2013_pat0001_1/...

Cases are named ``brats2013_pat0005`` (``brats_<group>_pat<id>_<n>`` -> ``brats<group>_pat<id>``). The train and
validation cases go to imagesTr/labelsTr with DeepMedic's split as one fold of ``splits_final.json``; the test
cases go to imagesTs/labelsTs. ``flat=True`` reads a folder that holds the case folders directly (all -> imagesTr).

The images are z-scored inside the brain with a constant, *nonzero* value outside it, so nnU-Net's crop to the
nonzero region crops nothing. ``mask_background=True`` sets every voxel outside ``brainmask.nii.gz`` (> 0.5) to 0
in both channels, so that nnU-Net crops to the brain and normalises inside it.
"""
import logging
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from dataset_conversion.common import (ConversionError, atomic_dataset, base_parser, dataset_folder_name,
                                       get_raw_root, make_dirs, require_dir, run_cli, write_dataset_json,
                                       write_splits)
from dataset_conversion.image_io import check_same_geometry, check_values, copy_file, read_sitk, write_label_sitk

logger = logging.getLogger(__name__)

NAME = "BraTSDeepMedic"
CHANNELS = {"0": "FLAIR", "1": "T1c"}
CHANNEL_FILES = ["Flair_subtrMeanDivStd.nii.gz", "T1c_subtrMeanDivStd.nii.gz"]  # in channel order
LABEL_FILE = "OTMultiClass.nii.gz"
MASK_FILE = "brainmask.nii.gz"
LABELS = {"background": 0, "necrosis": 1, "edema": 2, "non_enhancing": 3, "enhancing": 4}
SPLIT_FOLDERS = {"train": "Tr", "validation": "Tr", "test": "Ts"}
CASE_RE = re.compile(r"brats_([A-Za-z0-9]+)_pat(\d+)(?:_\d+)?")
REFERENCE = "https://github.com/deepmedic/deepmedic (examples/dataForExamples/brats2015TrainingData)"
LICENSE = "CC BY-NC-SA 3.0 (BRATS, Menze et al., IEEE TMI 2015; normalised by K. Kamnitsas for DeepMedic)"


def case_id(folder: Path) -> str:
    """``brats_2013_pat0001_1`` -> ``brats2013_pat0001``; other folder names are kept as they are."""
    m = CASE_RE.fullmatch(folder.name)
    return f"brats{m.group(1)}_pat{m.group(2)}" if m else folder.name


def _case_folders(folder: Path) -> List[Path]:
    """The visible sub-folders of ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_cases(src: Path, flat: bool) -> Dict[str, List[Path]]:
    """{"Tr": [case folders], "Ts": [...]} from the split folders (or every case folder of ``src`` if ``flat``)."""
    if flat:
        return {"Tr": _case_folders(src), "Ts": []}
    present = [s for s in SPLIT_FOLDERS if (src / s).is_dir()]
    if not present:
        raise ConversionError(f"no train/, validation/ or test/ folder in {src}; pass --flat (flat=True) if it "
                              f"holds the case folders directly")
    cases: Dict[str, List[Path]] = {"Tr": [], "Ts": []}
    for split in present:
        cases[SPLIT_FOLDERS[split]] += _case_folders(src / split)
    return cases


def check_label_values(label: sitk.Image, path: Path) -> None:
    """Raise unless the (float) values of OTMultiClass are the integers 0..4, so a cast to uint8 keeps them."""
    arr = sitk.GetArrayViewFromImage(label)
    fractional = ~np.isfinite(arr) | (arr != np.round(arr))
    if fractional.any():
        raise ConversionError(f"non-integer label values {np.unique(arr[fractional])[:10].tolist()} in {path} "
                              f"(expected the integers {sorted(LABELS.values())})")
    check_values(arr, LABELS.values(), path)


def _write_masked(image: sitk.Image, outside: np.ndarray, out: Path) -> None:
    """Write ``image`` with the voxels where ``outside`` is True set to 0 (geometry and data type kept)."""
    arr = sitk.GetArrayFromImage(image)
    arr[outside] = 0
    masked = sitk.GetImageFromArray(arr)
    masked.CopyInformation(image)
    sitk.WriteImage(masked, str(out), True)


def convert_case(case_dir: Path, name: str, images_dir: Path, labels_dir: Path, mask_background: bool) -> None:
    """Check one case (files present and readable, channels and label on one grid, labels 0..4) and write it."""
    label_path = case_dir / LABEL_FILE
    label = read_sitk(label_path)
    check_label_values(label, label_path)
    channel_paths = [case_dir / f for f in CHANNEL_FILES]
    channels = [read_sitk(p) for p in channel_paths]
    for image, path in zip(channels, channel_paths):
        check_same_geometry(image, label, path, label_path)
    outside = None
    if mask_background:
        mask_path = case_dir / MASK_FILE
        mask = read_sitk(mask_path)
        check_same_geometry(channels[0], mask, channel_paths[0], mask_path)
        outside = sitk.GetArrayViewFromImage(mask) <= 0.5
    for c, (image, path) in enumerate(zip(channels, channel_paths)):
        out = images_dir / f"{name}_{c:04d}.nii.gz"
        if outside is None:
            copy_file(path, out)
        else:
            _write_masked(image, outside, out)
    write_label_sitk(label, labels_dir / f"{name}.nii.gz")  # uint8, geometry kept
    logger.debug("converted %s -> %s", case_dir, name)


def _unique_names(cases: Dict[str, List[Path]]) -> Dict[str, List[Tuple[str, Path]]]:
    """Case names per split; two folders that give the same name (in any split) are an error."""
    seen: Dict[str, Path] = {}
    named: Dict[str, List[Tuple[str, Path]]] = {}
    for split, folders in cases.items():
        named[split] = []
        for folder in folders:
            name = case_id(folder)
            if name in seen:
                raise ConversionError(f"case folders {seen[name]} and {folder} both give case name {name}")
            seen[name] = folder
            named[split].append((name, folder))
    return named


def convert_brats_deepmedic(src: os.PathLike, raw_root: Optional[os.PathLike] = None, dataset_id: int = 115,
                            overwrite: bool = False, flat: bool = False, mask_background: bool = False) -> Path:
    """Convert DeepMedic's BRATS layout into ``nnUNet_raw/Dataset115_BraTSDeepMedic``.

    Args:
        src: the folder holding ``train/``, ``validation/``, ``test/`` (or its parent ``dataForExamples``), or,
            with ``flat``, a folder holding the case folders directly.
        raw_root: nnUNet_raw folder (default: the ``nnUNet_raw`` environment variable).
        dataset_id: nnU-Net dataset id.
        overwrite: replace an existing dataset of the same name.
        flat: ``src`` holds the case folders directly; all cases become training cases, no split file.
        mask_background: set the voxels outside ``brainmask.nii.gz`` to 0 (else the images are copied byte for byte).

    Returns:
        The dataset folder.
    """
    src = require_dir(Path(src), "DeepMedic BRATS folder")
    if not flat and (src / "brats2015TrainingData").is_dir():  # DeepMedic's dataForExamples folder
        src = src / "brats2015TrainingData"
    named = _unique_names(find_cases(src, flat))
    if not named["Tr"]:
        raise ConversionError(f"no training case folders found in {src}"
                              + ("" if flat else "/train or /validation"))
    root = get_raw_root(raw_root)
    folder_name = dataset_folder_name(dataset_id, NAME)
    with atomic_dataset(root, folder_name, overwrite) as tmp:
        dirs = make_dirs(tmp, ["imagesTr", "labelsTr", "imagesTs", "labelsTs"])
        for split in ("Tr", "Ts"):
            for name, folder in named[split]:
                convert_case(folder, name, dirs[f"images{split}"], dirs[f"labels{split}"], mask_background)
        train = [n for n, f in named["Tr"] if f.parent.name == "train"]
        val = [n for n, f in named["Tr"] if f.parent.name == "validation"]
        if not flat and train and val:
            write_splits(tmp, [{"train": train, "val": val}])
        write_dataset_json(tmp, CHANNELS, LABELS, len(named["Tr"]), ".nii.gz", dataset_name=NAME,
                           reference=REFERENCE, license=LICENSE,
                           description="BRATS 2013/2015 (DeepMedic example layout): FLAIR + T1c, labels necrosis, "
                                       "edema, non-enhancing and enhancing tumour"
                                       + ("; background outside the brain mask set to 0" if mask_background else ""))
    return root / folder_name


def main(argv=None) -> int:
    """CLI ``nnsam2_convert_brats_deepmedic -i FOLDER [--flat] [--mask-background] [-d 115] [--overwrite]``."""
    p = base_parser("Convert BRATS 2013/2015 cases in DeepMedic's layout (train/validation/test case folders "
                    "with Flair/T1c_subtrMeanDivStd.nii.gz and OTMultiClass.nii.gz) to nnU-Net raw format.",
                    default_id=115)
    p.add_argument("--flat", action="store_true",
                   help="-i holds the case folders directly (no train/validation/test level): all go to imagesTr")
    p.add_argument("--mask-background", action="store_true",
                   help="set voxels outside brainmask.nii.gz to 0, so nnU-Net crops to the brain (default: copy)")
    args = p.parse_args(argv)
    return run_cli(convert_brats_deepmedic, args, flat=args.flat, mask_background=args.mask_background)


if __name__ == "__main__":
    sys.exit(main())
