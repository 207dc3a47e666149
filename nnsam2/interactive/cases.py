"""Which cases ``nnsam2_evaluate_interactive`` simulates clicks on: a fold's validation cases
(raw images and labels of nnUNet_raw, the fold's split of nnUNet_preprocessed) or a test folder
with its references."""
import os
from typing import Dict, Sequence, Tuple

from nnsam2.utils.nnunet_env import UsageError

Cases = Dict[str, Tuple[Sequence[str], str]]


def validation_cases(dataset_name: str, fold: str, dataset_json: dict) -> Cases:
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
    from nnunetv2.utilities.file_path_utilities import load_json
    if not str(fold).isdigit():
        raise UsageError(f"fold {fold} has no validation cases: give a test folder with -i and "
                         f"its references with -ref")
    splits_file = os.path.join(nnUNet_preprocessed or "", dataset_name, "splits_final.json")
    if not os.path.isfile(splits_file):
        raise UsageError(f"{splits_file} does not exist: train the fold first (nnsam2_train)")
    splits = load_json(splits_file)
    if int(fold) >= len(splits):
        raise UsageError(f"fold {fold} is not in {splits_file} ({len(splits)} folds)")
    raw = os.path.join(nnUNet_raw or "", dataset_name)
    return folder_cases(os.path.join(raw, "imagesTr"), os.path.join(raw, "labelsTr"),
                        dataset_json, splits[int(fold)]["val"])


def folder_cases(images: str, references: str, dataset_json: dict,
                 names: Sequence[str] = None) -> Cases:
    """{case: (its channel files, its reference file)}; every case needs both."""
    from nnunetv2.utilities.utils import (create_lists_from_splitted_dataset_folder,
                                          get_identifiers_from_splitted_dataset_folder)
    ending = dataset_json["file_ending"]
    for folder, what in ((images, "-i"), (references, "-ref")):
        if not os.path.isdir(folder):
            raise UsageError(f"{what} {folder} does not exist")
    names = sorted(names or get_identifiers_from_splitted_dataset_folder(images, ending))
    if not names:
        raise UsageError(f"no {ending} images in {images}")
    files = create_lists_from_splitted_dataset_folder(images, ending, names)
    missing = [n for n, f in zip(names, files) if not f]
    missing += [n for n in names if not os.path.isfile(os.path.join(references, n + ending))]
    if missing:
        raise UsageError(f"case(s) {', '.join(sorted(set(missing))[:5])} lack an image in "
                         f"{images} or a reference {'CASE' + ending} in {references}")
    return {n: (f, os.path.join(references, n + ending)) for n, f in zip(names, files)}
