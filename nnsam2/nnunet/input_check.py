"""Checks a folder of raw images against a trained model before anything is predicted."""
import os
import re
from collections import defaultdict
from typing import Dict, List

from nnsam2.nnunet.environment import UsageError


def group_cases(folder: str, file_ending: str) -> Dict[str, List[str]]:
    """{case id: sorted channel files} for ``CASE_XXXX<file_ending>`` names."""
    if not os.path.isdir(folder):
        raise UsageError(f"input folder {folder} does not exist")
    pattern = re.compile(r"^(.+)_(\d{4})" + re.escape(file_ending) + "$")
    cases, stray = defaultdict(list), []
    for name in sorted(os.listdir(folder)):
        match = pattern.match(name)
        if match:
            cases[match.group(1)].append(name)
        elif name.endswith(file_ending):
            stray.append(name)
    if stray:
        raise UsageError(f"{os.path.join(folder, stray[0])}: file name does not follow nnU-Net's "
                         f"CASE_XXXX{file_ending} channel naming")
    if not cases:
        raise UsageError(f"no {file_ending} images in {folder} (the model was trained on "
                         f"{file_ending} files named CASE_0000{file_ending})")
    return dict(cases)


def check_input_folder(folder: str, dataset_json: dict, reader_class, expect_2d: bool) -> List[str]:
    """Case ids in ``folder``; a UsageError naming the file when channels or geometry are wrong."""
    ending = dataset_json["file_ending"]
    channels = len(dataset_json["channel_names"])
    cases = group_cases(folder, ending)
    for case, files in cases.items():
        expected = [f"{case}_{i:04d}{ending}" for i in range(channels)]
        if files != expected:
            raise UsageError(f"case {case} in {folder} has channel files {files}, expected "
                             f"{expected} ({channels} channel(s): {dataset_json['channel_names']})")
        _check_geometry([os.path.join(folder, f) for f in files], reader_class, expect_2d)
    return sorted(cases)


def _check_geometry(paths: List[str], reader_class, expect_2d: bool) -> None:
    try:
        image, _ = reader_class().read_images(paths)  # (C, Z, Y, X); checks channels agree
    except Exception as e:  # the readers raise RuntimeError/AssertionError/OSError variously
        raise UsageError(f"cannot read {', '.join(paths)}: {e}") from e
    if expect_2d and image.shape[1] != 1:
        raise UsageError(f"{paths[0]} is a 3D image of shape {tuple(image.shape[1:])} but the "
                         f"model was trained on 2D images")
