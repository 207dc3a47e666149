"""nnU-Net experiment planner for the adapted SAM2: ``2d`` always, ``2d_mem`` for 3D datasets."""
import contextlib
import io
import logging
import math
import os
from dataclasses import asdict
from typing import Sequence

import numpy as np
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import \
    ExperimentPlanner

from nnsam2.network.configs import get_size
from nnsam2.network.sam2_net import SIZE_MULTIPLE
from nnsam2.experiment_planning.training_footprint import estimate_training_memory, \
    plan_batch_size
from nnsam2.experiment_planning.mem_configuration import MEM_CONFIGURATION, plan_memory_configuration

logger = logging.getLogger(__name__)

PLANS_NAME = "nnSAM2Plans"
MIN_PATCH = 64
PLANNED_CONFIGURATIONS = ("2d", MEM_CONFIGURATION)
NETWORK_CLASS = "nnsam2.network.sam2_net.SAM2SegNet"


def round_patch(patch: Sequence[int], multiple: int = SIZE_MULTIPLE,
                minimum: int = MIN_PATCH) -> list:
    """Round each side *up* to a multiple of 32 (still divisible by the U-Net's pooling)."""
    return [max(minimum, int(math.ceil(p / multiple)) * multiple) for p in patch]


def sam2_architecture(size: str) -> dict:
    """The plans' ``architecture`` entry: what the trainers build (the adapter is the trainer's)."""
    cfg = asdict(get_size(size))
    cfg.pop("checkpoint_names")
    return {"network_class_name": NETWORK_CLASS,
            "arch_kwargs": {"sam2_size": size, **cfg, "input_size_multiple": SIZE_MULTIPLE,
                            "adapter": "chosen by the trainer (-tr), see documentation/methods.md"},
            "_kw_requires_import": []}


class nnSAM2Planner(ExperimentPlanner):
    """nnU-Net's planner, planning only the configurations nnsam2 trains.

    ``2d``: nnU-Net's 2D patch, rounded up to multiples of 32; the batch size comes from the
    measured training memory of the chosen SAM2 size and the GPU memory target; the SAM2 settings
    are recorded under ``configurations/2d/sam2`` and the ``architecture`` entry describes the
    SAM2 network. ``2d_mem`` (3D datasets only): runs of consecutive slices read by SAM2's memory
    attention, planned by :mod:`nnsam2.experiment_planning.mem_configuration`. No 3D U-Net is planned.

    Args:
        sam2_size: ``tiny``, ``small``, ``base_plus``, ``large`` or ``toy``.
        patch_size: explicit (H, W) patch instead of nnU-Net's.
        clean: replace the plans file; otherwise configurations that nnsam2 does not plan (e.g.
            a user's own) are kept, as nnU-Net keeps them.
    """

    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = PLANS_NAME,
                 overwrite_target_spacing=None, suppress_transpose: bool = False,
                 sam2_size: str = "tiny", patch_size: Sequence[int] = None, clean: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name,
                         plans_name, overwrite_target_spacing, suppress_transpose)
        get_size(sam2_size)  # validates the name early
        self.sam2_size = sam2_size
        self.sam2_patch_size = patch_size
        self.clean = clean

    def plan_experiment(self):
        # nnU-Net prints every configuration it considers; ours are logged by save_plans.
        with contextlib.redirect_stdout(io.StringIO()):
            return super().plan_experiment()

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier,
                                    approximate_n_voxels_dataset, _cache) -> dict:
        if len(spacing) != 2:
            # nnU-Net's plan_experiment asks for 3D plans too: answer without planning a 3D
            # U-Net (a whole-image "patch" also makes it skip 3d_lowres); save_plans drops it.
            return {"spacing": np.array(spacing, dtype=float),
                    "patch_size": [int(s) for s in median_shape]}
        plan = super().get_plans_for_configuration(spacing, median_shape, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        patch = round_patch(self.sam2_patch_size or plan["patch_size"])
        num_channels = len(self.dataset_json["channel_names"])
        num_classes = len([v for k, v in self.dataset_json["labels"].items() if k != "ignore"])
        mem = estimate_training_memory(self.sam2_size, num_channels, max(2, num_classes), patch)
        cap = round(approximate_n_voxels_dataset * self.max_dataset_covered / np.prod(patch))
        batch, warning = plan_batch_size(mem, self.UNet_vram_target_GB, cap,
                                         f"SAM2 {self.sam2_size}, 2d patch {patch}")
        plan["patch_size"] = patch
        plan["batch_size"] = batch
        plan["architecture"] = sam2_architecture(self.sam2_size)
        plan["sam2"] = dict(size=self.sam2_size, gpu_memory_target_gb=self.UNet_vram_target_GB,
                            estimated_gb_per_sample=round(mem["per_sample_bytes"] / 1e9, 3),
                            estimated_fixed_gb=round(mem["fixed_bytes"] / 1e9, 3))
        if warning:
            plan["sam2"]["memory_warning"] = warning
        return plan

    def save_plans(self, plans):
        mem = plan_memory_configuration(plans, self.dataset_json, self.sam2_size,
                                         self.UNet_vram_target_GB)
        if mem is not None:
            plans["configurations"][MEM_CONFIGURATION] = mem
        plans["configurations"] = {c: plans["configurations"][c] for c in PLANNED_CONFIGURATIONS
                                   if c in plans["configurations"]}
        for name, config in plans["configurations"].items():
            config = {**plans["configurations"].get(config.get("inherits_from"), {}), **config}
            logger.info("SAM2 %s plan %r: patch %s, batch size %d, spacing %s", self.sam2_size,
                        name, config["patch_size"], config["batch_size"], config["spacing"])
        plans_file = os.path.join(os.environ["nnUNet_preprocessed"], self.dataset_name,
                                  self.plans_identifier + ".json")
        if self.clean and os.path.isfile(plans_file):
            os.remove(plans_file)  # nnU-Net would merge the old file's other configurations in
        super().save_plans(plans)
