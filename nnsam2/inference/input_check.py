"""Checks a folder of raw images against a trained model before anything is predicted.

The same checks as for training data (raw_data_check): file names, channels, headers, truncated
files, then every image read once with the model's reader; all problems are reported together.
"""
import os
from typing import List

from nnsam2.utils.nnunet_env import UsageError
from nnsam2.experiment_planning.raw_data_check import (DataCheckError, case_voxel_problems, check_case_headers,
                                          is_natural_image_reader)
from nnsam2.experiment_planning.raw_data_layout import channel_problems, group_channel_files


def check_input_folder(folder: str, dataset_json: dict, reader_class, expect_2d: bool) -> List[str]:
    """Case ids in ``folder``; a DataCheckError naming every file with wrong channels or geometry,
    or that is truncated or unreadable."""
    if not os.path.isdir(folder):
        raise UsageError(f"input folder {folder} does not exist")
    ending, channels = dataset_json["file_ending"], len(dataset_json["channel_names"])
    cases, problems = group_channel_files(folder, ending)
    if not cases and not problems:
        raise UsageError(f"no {ending} images in {folder} (the model was trained on {ending} "
                         f"files named CASE_0000{ending})")
    natural = is_natural_image_reader(reader_class)
    for case, files in sorted(cases.items()):
        layout = channel_problems(folder, case, files, channels, ending)
        paths = [os.path.join(folder, f) for f in files]
        ref, header_problems = (None, []) if layout else check_case_headers(paths, None, channels,
                                                                            natural)
        problems += layout + header_problems
        if ref is not None and expect_2d and len(ref.shape) == 3 and ref.shape[0] > 1:
            problems.append(f"{paths[0]} is a 3D image of shape {ref.shape} but the model was "
                            f"trained on 2D images")
        elif ref is not None:
            problems += case_voxel_problems(paths, None, reader_class, [])
    if problems:
        raise DataCheckError(folder, problems)
    return sorted(cases)

