"""One validation layer for nnU-Net raw data, run before nnU-Net reads a single voxel.

Always on: dataset.json, the file layout and every file's header (shape, spacing, components,
dimensionality) and completeness, then the voxels of every case, read once with the reader nnU-Net
will use (the planner's choice): label values within dataset.json's labels, no NaN or Inf in the
images, each label on its image's origin and direction. Preprocessing reads every voxel anyway;
this pass runs before it so that nothing is written for a dataset it would corrupt. Every problem
is one line naming the file and what to do; all are collected and reported together
(nnU-Net's own check stops at the first, with a traceback, or crashes later in preprocessing).
"""
import contextlib
import io
import logging
import multiprocessing
import os
from collections import Counter
from typing import List, Optional, Sequence, Tuple

import numpy as np

from nnsam2.utils.nnunet_env import UsageError
from nnsam2.utils.image_files import ImageFileError, ImageHeader, check_complete, read_header
from nnsam2.experiment_planning.raw_data_layout import expected_labels, find_training_cases, load_dataset_json

logger = logging.getLogger(__name__)

MIN_CASES_PER_WORKER = 25  # a spawned worker takes seconds to start: not worth it for few cases


class DataCheckError(UsageError):
    """Problems found in input data; ``problems`` holds one line per problem."""

    def __init__(self, where: str, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in {where}; fix them and run again:\n"
                         + "\n".join(f"  {p}" for p in self.problems))


def check_raw_dataset(folder: str, *, full: bool = False, num_processes: int = 1) -> None:
    """Raise a DataCheckError listing every problem of the raw dataset ``folder``.

    Args:
        full: ``--verify_dataset_integrity``; the voxels are checked either way (kept for callers).
        num_processes: worker processes for the voxel-level check.
    """
    if not os.path.isdir(folder):
        raise DataCheckError(folder, [f"{folder}: no such dataset folder; convert or copy the "
                                      f"dataset into nnUNet_raw first"])
    ds, problems = load_dataset_json(folder)
    if not ds:
        raise DataCheckError(folder, problems)
    cases, layout_problems = find_training_cases(folder, ds)
    reader, reader_problems = reader_class(ds, folder)
    natural = reader is not None and is_natural_image_reader(reader)
    clean, header_problems = _check_headers(cases, len(ds["channel_names"]), natural)
    problems = layout_problems + reader_problems + header_problems
    if reader is not None and clean:
        reader = reader_class(ds, folder, clean[0]["images"][0])[0] or reader  # as the planner
        problems += voxel_problems(clean, reader, expected_labels(ds), num_processes)
    if problems:
        raise DataCheckError(folder, problems)
    logger.info("raw data check passed: %d training case(s) in %s (headers and voxels)",
                len(cases), folder)


def _check_headers(cases: dict, num_channels: int, natural: bool) -> Tuple[List[dict], List[str]]:
    """(the cases whose headers are fine, every header problem including dimensionality)."""
    references, clean, problems = [], [], []
    for _, files in sorted(cases.items()):
        ref, case_problems = check_case_headers(files["images"], files["label"], num_channels,
                                                natural)
        problems += case_problems
        if ref is not None:
            references.append(ref)
            clean.append(files)
    return clean, problems + dimension_problems(references)


def reader_class(ds: dict, folder: str, example_file: Optional[str] = None):
    """nnU-Net's reader class for the dataset (by file ending or dataset.json's override); with
    ``example_file`` the first that reads it, as nnU-Net's planner picks ``image_reader_writer``."""
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return determine_reader_writer_from_dataset_json(ds, example_file, verbose=False), []
    except RuntimeError:
        return None, [f"{os.path.join(folder, 'dataset.json')}: no nnU-Net reader for file_ending "
                      f"{ds['file_ending']!r}; use .nii.gz, .nrrd, .mha, .png, .bmp or .tif"]


def is_natural_image_reader(reader) -> bool:
    from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO
    return issubclass(reader, NaturalImage2DIO)


def _file_channels(h: ImageHeader, natural: bool) -> Tuple[int, str]:
    """Channels a file gives nnU-Net, or 0 and the reason it cannot be used."""
    if natural:  # NaturalImage2DIO reads RGB(A) as 3 (4) channels
        if h.components in (1, 3, 4):
            return h.components, ""
        return 0, f"{h.components} values per pixel; save grey, RGB or RGBA images"
    if h.components != 1:
        return 0, (f"{h.components} values per voxel (a vector image); nnU-Net expects one "
                   f"channel per file: save each component as its own _XXXX file")
    return (h.shape[0], "") if h.dim == 4 else (1, "")  # SimpleITKIO: 4D = channels first


def _grid(h: ImageHeader) -> Tuple[tuple, tuple]:
    """Spatial (shape, spacing) without a leading channel axis."""
    return (h.shape[1:], h.spacing[1:]) if h.dim == 4 else (h.shape, h.spacing)


def check_case_headers(images: List[str], label: Optional[str], num_channels: int,
                       natural: bool) -> Tuple[Optional[ImageHeader], List[str]]:
    """One case's files, from their headers: (the first image's header or None, problems)."""
    headers, problems = [], []
    for path in images + ([label] if label else []):
        try:
            check_complete(path)
            headers.append(read_header(path))
        except ImageFileError as e:
            problems.append(str(e))
    if problems:
        return None, problems
    image_headers = headers[:len(images)]
    channels = 0
    for h in image_headers:
        count, why = _file_channels(h, natural)
        channels += count
        problems += [f"{h.path}: {why}"] if why else []
    if label and (headers[-1].components != 1 or headers[-1].dim == 4):
        problems.append(f"{label}: a label file must hold one value per voxel (got "
                        f"{headers[-1].components} components, {headers[-1].dim}D); save it as a "
                        f"single-channel integer image")
    if not problems and channels != num_channels:
        problems.append(f"{images[0]}: the case's image file(s) give {channels} channel(s) but "
                        f"dataset.json channel_names lists {num_channels}; fix the files or "
                        f"channel_names")
    problems += _grid_problems(headers)
    return (None if problems else image_headers[0]), problems


def _grid_problems(headers: List[ImageHeader]) -> List[str]:
    """Every file of a case must share the first image's voxel grid (nnU-Net's tolerance)."""
    ref_shape, ref_spacing = _grid(headers[0])
    problems = []
    for h in headers[1:]:
        shape, spacing = _grid(h)
        if shape != ref_shape:
            problems.append(f"{h.path}: shape {shape} differs from {ref_shape} of "
                            f"{headers[0].path}; a case's channels and label must share one grid")
        elif not np.allclose(spacing, ref_spacing):
            problems.append(f"{h.path}: spacing {spacing} differs from {ref_spacing} of "
                            f"{headers[0].path}; resample or fix the header")
    return problems


def dimension_problems(references: List[ImageHeader]) -> List[str]:
    """nnU-Net plans one dimensionality per dataset: name the cases that differ from most."""
    dims = [len(_grid(h)[0]) for h in references]
    if not dims:
        return []
    usual = Counter(dims).most_common(1)[0][0]
    return [f"{h.path}: {d}D image but most cases are {usual}D; one dataset needs one "
            f"dimensionality" for h, d in zip(references, dims) if d != usual]


def voxel_problems(cases: List[dict], reader, allowed: List[int], num_processes: int) -> List[str]:
    """Read every case (``{"images": [...], "label": path}``): NaN values, unexpected labels."""
    jobs = [(c["images"], c["label"], reader, allowed) for c in cases]
    if num_processes <= 1 or len(jobs) < MIN_CASES_PER_WORKER * 2:
        results = [case_voxel_problems(*job) for job in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(num_processes) as pool:
            results = pool.starmap(case_voxel_problems, jobs)
    return [p for r in results for p in r]


def case_voxel_problems(images: List[str], label: Optional[str], reader,
                        allowed: List[int]) -> List[str]:
    """Non-finite image values, label values outside ``allowed``, a label whose origin or direction
    differs from its image (nnU-Net's tolerance); module level: picklable."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net's readers print their own errors
            data, props = reader().read_images(images)  # (C, Z, Y, X)
            seg, seg_props = reader().read_seg(label) if label else (None, None)
    except Exception as e:  # the readers raise RuntimeError/AssertionError/OSError variously
        return [f"{images[0]}: cannot read the voxels ({e}); replace the file with a readable copy"]
    per_file = data.shape[0] == len(images)
    problems = [f"{images[i if per_file else 0]}: contains {why} values; replace them (e.g. with "
                f"the image minimum)" for i in range(data.shape[0])
                for why in [_non_finite(data[i])] if why]
    reported = {p.split(": contains ")[0] for p in problems}
    problems += [f"{path}: contains {why} values (SimpleITK, nnU-Net's reader, silently reads "
                 f"them, or the whole image, as 0); replace them (e.g. with the image minimum)"
                 for path in images if path not in reported
                 for why in [_nifti_non_finite(path)] if why]
    if seg is not None:
        values = np.unique(seg[0])
        bad = [_number(v) for v in values if not np.isfinite(v) or v not in allowed]
        if bad:
            problems.append(f"{label}: label value(s) {bad[:10]} not in dataset.json labels "
                            f"{allowed}; fix the label file or declare the label")
        problems += geometry_problems(images[0], props, label, seg_props)
    return sorted(set(problems), key=problems.index)


def _non_finite(values: np.ndarray) -> str:
    """"NaN", "Inf", "NaN and Inf" or ""."""
    kinds = [k for k, found in (("NaN", np.isnan(values).any()), ("Inf", np.isinf(values).any()))
             if found]
    return " and ".join(kinds)


def _nifti_non_finite(path: str) -> str:
    """SimpleITK (nnU-Net's NIfTI reader) reads NaN in a float NIfTI as 0, and an image holding
    Inf as all zeros: look at the stored values (nibabel, no scaling) of NIfTI files."""
    if not path.lower().endswith((".nii", ".nii.gz")):
        return ""
    import nibabel
    try:
        stored = np.asanyarray(nibabel.load(path).dataobj)
    except Exception:  # unreadable for nibabel: the nnU-Net reader above has the final word
        return ""
    return _non_finite(stored) if np.issubdtype(stored.dtype, np.floating) else ""


GEOMETRY_KEYS = (("sitk_stuff", "origin"), ("sitk_stuff", "direction"),
                 ("nibabel_stuff", "original_affine"))


def geometry_problems(image: str, props: dict, label: str, seg_props: dict) -> List[str]:
    """A label must lie where its image lies: origin, direction (or affine) equal within
    np.allclose, as nnU-Net's verify_dataset_integrity (which only warns)."""
    problems = []
    for group, key in GEOMETRY_KEYS:
        a, b = props.get(group, {}).get(key), seg_props.get(group, {}).get(key)
        if a is not None and b is not None and not np.allclose(a, b):
            problems.append(f"{label}: {key.replace('original_', '')} {_rounded(b)} differs from "
                            f"{_rounded(a)} of {image}; the label must share its image's geometry "
                            f"(copy the image's header into the label)")
    return problems


def _rounded(value) -> list:
    return np.round(np.asarray(value, dtype=float), 4).tolist()


def _number(value) -> float:
    """7.0 -> 7 for messages (nnU-Net's readers return labels as float32)."""
    return int(value) if np.isfinite(value) and value == int(value) else float(value)
