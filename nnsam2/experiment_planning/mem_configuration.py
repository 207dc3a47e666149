"""Planning ``2d_mem``: runs of consecutive slices that SAM2's memory attention reads.

Rule (documented in documentation/methods.md):

* only datasets whose median case has at least :data:`MIN_SLICES` slices get it (2D datasets,
  and stacks too thin to give a slice any neighbours, do not);
* in-plane patch, spacing, normalisation and preprocessed data are the ``2d`` configuration's
  (``inherits_from: 2d``): slices keep their original spacing, so nothing is preprocessed twice;
* slices per patch: enough to span :data:`CONTEXT_MM` mm along the slice axis at the median
  slice spacing, at least :data:`MIN_SLICES`, at most :data:`MAX_SLICES` (SAM2 remembers the
  6 previous frames, so a 7-slice run lets its last slice see all the others) and at most the
  median number of slices;
* batch size: from the measured training memory of the memory network at that depth and the
  GPU memory target, as for ``2d``; while it is below 2 the run is shortened (down to
  MIN_SLICES), and it never covers more than nnU-Net's 5% of the dataset's voxels; when 2 do
  not fit even then, the plans say so (``sam2/memory_warning``), as for ``2d``.
"""
import logging
import math

import numpy as np

from nnsam2.experiment_planning.training_footprint import MIN_BATCH, batch_that_fits, \
    estimate_training_memory, plan_batch_size

logger = logging.getLogger(__name__)

MEM_CONFIGURATION = "2d_mem"
BASE_CONFIGURATION = "2d"
MIN_SLICES = 3
MAX_SLICES = 7  # sam2's num_maskmem: the current frame + 6 remembered ones
CONTEXT_MM = 50.0
MAX_DATASET_COVERED = 0.05  # nnU-Net's ExperimentPlanner.max_dataset_covered


def slices_for_spacing(slice_spacing_mm: float, median_slices: int) -> int:
    """Slices per patch from the slice spacing alone (before the memory budget)."""
    wanted = int(round(CONTEXT_MM / max(slice_spacing_mm, 1e-3)))
    return int(min(max(wanted, MIN_SLICES), MAX_SLICES, median_slices))


def is_volumetric(plans: dict) -> bool:
    """Whether the dataset's median case is a stack of enough slices for ``2d_mem``."""
    return plans["original_median_shape_after_transp"][0] >= MIN_SLICES


def plan_memory_configuration(plans: dict, dataset_json: dict, sam2_size: str,
                              gpu_memory_target_gb: float):
    """The ``2d_mem`` entry for ``plans`` (nnU-Net's plans dict, ``2d`` planned), or None for
    datasets that are not volumetric."""
    if not is_volumetric(plans):
        return None
    base = plans["configurations"][BASE_CONFIGURATION]
    slice_spacing = float(plans["original_median_spacing_after_transp"][0])
    median_slices = int(plans["original_median_shape_after_transp"][0])
    channels = len(dataset_json["channel_names"])
    classes = max(2, len([k for k in dataset_json["labels"] if k != "ignore"]))
    in_plane = [int(p) for p in base["patch_size"]]
    slices = slices_for_spacing(slice_spacing, median_slices)
    voxels = np.prod(plans["original_median_shape_after_transp"], dtype=np.float64) * \
        dataset_json["numTraining"]
    while True:
        mem = estimate_training_memory(sam2_size, channels, classes, in_plane, slices=slices)
        if batch_that_fits(mem, gpu_memory_target_gb) >= MIN_BATCH or slices <= MIN_SLICES:
            break
        slices -= 1
    cap = math.floor(voxels * MAX_DATASET_COVERED / (slices * np.prod(in_plane)))
    # never refused: 2d, planned already, is usable without it
    batch, warning = plan_batch_size(mem, gpu_memory_target_gb, cap,
                                     f"SAM2 {sam2_size}, 2d_mem patch {[slices, *in_plane]}",
                                     refuse=False)
    sam2 = {key: value for key, value in base["sam2"].items() if key != "memory_warning"}
    if warning:
        sam2["memory_warning"] = warning
    logger.info("2d_mem: %d slices per patch (median slice spacing %.3g mm, %d slices), batch %d; "
                "train 2d first: each 2d_mem fold starts from the trained 2d fold, and "
                "nnsam2_find_best_configuration tells whether the memory adds",
                slices, slice_spacing, median_slices, batch)
    return {
        "inherits_from": BASE_CONFIGURATION,
        "patch_size": [slices, *in_plane],
        "batch_size": batch,
        "sam2": {**sam2, "memory": {
            "slices": slices, "median_slice_spacing_mm": slice_spacing,
            "median_slices": median_slices, "context_mm": CONTEXT_MM,
            "estimated_gb_per_sample": round(mem["per_sample_bytes"] / 1e9, 3)}},
    }
