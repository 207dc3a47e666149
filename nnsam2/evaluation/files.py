"""Finding and reading reference, prediction, probability and field-of-view files.

Images are read with nnU-Net's own reader/writers (``nnunetv2.imageio``), so every format nnU-Net
writes can be evaluated. Segmentations come back as (Z, Y, X) with Z = 1 for 2D data, the axis
order nnU-Net uses for the ``probabilities`` array in ``CASE.npz`` (shape (K, Z, Y, X)).
"""
import json
import logging
import os
from collections import Counter
from typing import Dict, List, Optional

import numpy as np
from nnunetv2.imageio.reader_writer_registry import (LIST_OF_IO_CLASSES,
                                                     determine_reader_writer_from_file_ending)

from nnsam2.utils.image_files import ImageFileError, check_complete

logger = logging.getLogger(__name__)


class EvaluationInputError(ValueError):
    """A missing, unreadable or mismatching input file; the message names the file."""


def supported_file_endings() -> List[str]:
    """File endings nnU-Net can read, longest first (so '.nii.gz' wins over '.gz')."""
    endings = {e.lower() for rw in LIST_OF_IO_CLASSES for e in rw.supported_file_endings}
    return sorted(endings, key=len, reverse=True)


def _ending_of(filename: str) -> Optional[str]:
    return next((e for e in supported_file_endings() if filename.lower().endswith(e)), None)


def detect_file_ending(folder: str) -> str:
    """The most common nnU-Net image file ending among the files in ``folder``."""
    if not os.path.isdir(folder):
        raise EvaluationInputError(f"folder not found: {folder}")
    endings = Counter(_ending_of(f) for f in os.listdir(folder))
    endings.pop(None, None)
    if not endings:
        raise EvaluationInputError(f"no image files with a supported ending {supported_file_endings()} "
                                   f"in {folder}")
    ending = endings.most_common(1)[0][0]
    logger.info("detected file ending %s in %s", ending, folder)
    return ending


def list_cases(folder: str, file_ending: str) -> Dict[str, str]:
    """``{case name: path}`` for the files in ``folder`` ending in ``file_ending``, sorted by name."""
    if not os.path.isdir(folder):
        raise EvaluationInputError(f"folder not found: {folder}")
    names = sorted(f for f in os.listdir(folder) if f.endswith(file_ending))
    return {f[:-len(file_ending)]: os.path.join(folder, f) for f in names}


def find_case_file(folder: str, case: str, preferred_ending: Optional[str] = None) -> Optional[str]:
    """``folder/case<ending>`` for the preferred or any supported ending, or None."""
    endings = ([preferred_ending] if preferred_ending else []) + supported_file_endings()
    for ending in endings:
        path = os.path.join(folder, case + ending)
        if os.path.isfile(path):
            return path
    return None


def check_complete_files(paths: List[str]) -> None:
    """The completeness check of prediction inputs (truncated NIfTI, gzip, PNG: SimpleITK reads
    them without complaint, the missing voxels as zeros), one line per bad file, all together."""
    problems = []
    for path in paths:
        try:
            check_complete(path)
        except ImageFileError as err:
            problems.append(str(err))
    if problems:
        raise EvaluationInputError(f"{len(problems)} unreadable file(s):\n  " + "\n  ".join(problems))


_READERS: Dict[str, object] = {}  # file ending -> nnU-Net reader, chosen with the first file read


def _reader(file_ending: str, example_file: str):
    if file_ending not in _READERS:
        rw = determine_reader_writer_from_file_ending(file_ending, example_file, verbose=False)
        _READERS[file_ending] = rw()
    return _READERS[file_ending]


def _read(path: str) -> np.ndarray:
    """(C, Z, Y, X) array as nnU-Net's reader returns it; errors name the file."""
    ending = _ending_of(os.path.basename(path))
    if ending is None:
        raise EvaluationInputError(f"unsupported file ending: {path}")
    try:
        array, _ = _reader(ending, path).read_seg(path)
    except Exception as err:  # nnU-Net readers raise assorted errors
        raise EvaluationInputError(f"cannot read {path}: {err}") from err
    return np.asarray(array)


def read_segmentation(path: str) -> np.ndarray:
    """Integer label map (Z, Y, X) of one segmentation file."""
    array = _read(path)
    if array.shape[0] != 1:
        raise EvaluationInputError(f"{path}: expected a single-channel segmentation, "
                                   f"got {array.shape[0]} channels")
    return np.rint(array[0]).astype(np.int32)  # (1, Z, Y, X) -> (Z, Y, X)


def read_fov(path: str) -> np.ndarray:
    """Boolean field-of-view mask (Z, Y, X): nonzero in any channel = inside."""
    return np.any(_read(path) != 0, axis=0)  # (C, Z, Y, X) -> (Z, Y, X)


def read_probabilities(path: str) -> np.ndarray:
    """``probabilities`` (K, Z, Y, X) from nnU-Net's ``--save_probabilities`` ``CASE.npz``."""
    try:
        with np.load(path) as data:
            if "probabilities" not in data.files:
                raise EvaluationInputError(f"{path} has no 'probabilities' array (keys: {data.files})")
            probs = data["probabilities"]
    except EvaluationInputError:
        raise
    except Exception as err:
        raise EvaluationInputError(f"cannot read {path}: {err}") from err
    if probs.ndim != 4:
        raise EvaluationInputError(f"{path}: probabilities must be (K, Z, Y, X), got {probs.shape}")
    return probs


def find_dataset_json(ref_folder: str, pred_folder: str) -> Optional[str]:
    """nnU-Net's dataset.json next to the references (raw layout: ``DatasetXXX/labelsTs/..`` ->
    ``DatasetXXX/dataset.json``) or in the prediction folder (the predictor copies it there)."""
    for folder in (ref_folder, os.path.dirname(os.path.abspath(ref_folder)), pred_folder):
        path = os.path.join(folder, "dataset.json")
        if os.path.isfile(path):
            return path
    return None


def ignore_label_from_dataset_json(path: str) -> Optional[int]:
    """The value of the ``"ignore"`` entry of ``labels`` in a dataset.json, or None."""
    try:
        with open(path) as f:
            labels = json.load(f).get("labels", {})
    except (OSError, ValueError, AttributeError) as err:
        raise EvaluationInputError(f"cannot read labels from {path}: {err}") from err
    value = labels.get("ignore") if isinstance(labels, dict) else None
    return int(value) if isinstance(value, (int, float)) else None
