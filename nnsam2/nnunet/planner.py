"""nnU-Net experiment planner for the adapted SAM2 (2D configuration only)."""
import logging
import math
from typing import Sequence

import numpy as np
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import \
    ExperimentPlanner

from nnsam2.network.configs import get_size
from nnsam2.network.sam2_net import SIZE_MULTIPLE
from nnsam2.nnunet.memory import estimate_training_memory

logger = logging.getLogger(__name__)

PLANS_NAME = "nnSAM2Plans"
MIN_PATCH = 64


def round_patch(patch: Sequence[int], multiple: int = SIZE_MULTIPLE,
                minimum: int = MIN_PATCH) -> list:
    """Round each side *up* to a multiple of 32 (still divisible by the U-Net's pooling)."""
    return [max(minimum, int(math.ceil(p / multiple)) * multiple) for p in patch]


class nnSAM2Planner(ExperimentPlanner):
    """nnU-Net's planner with a SAM2-compatible 2D configuration.

    The 2D patch is nnU-Net's, rounded up to multiples of 32; the batch size comes from the
    measured training memory of the chosen SAM2 size and the GPU memory target; the SAM2 settings
    are recorded under ``configurations/2d/sam2``. nnU-Net's U-Net ``architecture`` entry is kept
    (it is the reference the benchmark compares against). 3D datasets train slice-wise in ``2d``.

    Args:
        sam2_size: ``tiny``, ``small``, ``base_plus``, ``large`` or ``toy``.
        patch_size: explicit (H, W) patch instead of nnU-Net's.
    """

    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = PLANS_NAME,
                 overwrite_target_spacing=None, suppress_transpose: bool = False,
                 sam2_size: str = "tiny", patch_size: Sequence[int] = None):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name,
                         plans_name, overwrite_target_spacing, suppress_transpose)
        get_size(sam2_size)  # validates the name early
        self.sam2_size = sam2_size
        self.sam2_patch_size = patch_size

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier,
                                    approximate_n_voxels_dataset, _cache) -> dict:
        plan = super().get_plans_for_configuration(spacing, median_shape, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        if len(spacing) != 2:
            return plan  # dropped in save_plans
        patch = round_patch(self.sam2_patch_size or plan["patch_size"])
        num_channels = len(self.dataset_json["channel_names"])
        num_classes = len([v for k, v in self.dataset_json["labels"].items() if k != "ignore"])
        mem = estimate_training_memory(self.sam2_size, num_channels, max(2, num_classes), patch)
        budget = self.UNet_vram_target_GB * 1e9 - mem["fixed_bytes"]
        batch = int(budget // mem["per_sample_bytes"])
        cap = round(approximate_n_voxels_dataset * self.max_dataset_covered / np.prod(patch))
        plan["patch_size"] = patch
        plan["batch_size"] = int(max(self.UNet_min_batch_size, min(batch, cap)))
        plan["sam2"] = dict(size=self.sam2_size, gpu_memory_target_gb=self.UNet_vram_target_GB,
                            estimated_gb_per_sample=round(mem["per_sample_bytes"] / 1e9, 3),
                            estimated_fixed_gb=round(mem["fixed_bytes"] / 1e9, 3))
        logger.info("SAM2 %s 2d plan: patch %s, batch size %d", self.sam2_size, patch,
                    plan["batch_size"])
        return plan

    def save_plans(self, plans):
        plans["configurations"] = {"2d": plans["configurations"]["2d"]}
        super().save_plans(plans)
