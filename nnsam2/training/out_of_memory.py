"""The one line a training that runs out of GPU memory ends with: what the plans asked of the
GPU and what to do about it (the trainer raises it as a UsageError, which the commands print
without a traceback)."""
from typing import Optional, Sequence

import torch

ADVICE = ("plan again (nnsam2_plan_and_preprocess) with a smaller --sam2-size, a smaller "
          "--patch-size or -gpu_memory_target set to this GPU's memory, then train again")


def device_memory_gb(device: torch.device) -> Optional[float]:
    """Total memory of a CUDA device in GB (None for other devices)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(device).total_memory / 1e9


def message(*, device: torch.device, configuration: str, batch_size: int,
            patch_size: Sequence[int], sam2_size: str, planned_gb: Optional[float] = None,
            device_gb: Optional[float] = None) -> str:
    """E.g. ``cuda ran out of memory training 2d with batch 2 of [1024, 1024] patches (SAM2
    large, planned for 8 GB; this GPU has 7.8 GB): plan again ...``."""
    planned = f", planned for {planned_gb:g} GB" if planned_gb else ""
    has = f"; this GPU has {device_gb:.1f} GB" if device_gb else ""
    return (f"{device} ran out of memory training {configuration} with batch {batch_size} of "
            f"{list(patch_size)} patches (SAM2 {sam2_size}{planned}{has}): {ADVICE}")


def message_for(trainer) -> str:
    """:func:`message` for an nnsam2 trainer (its planned batch, patch and SAM2 settings)."""
    sam2 = trainer.configuration_manager.configuration["sam2"]
    return message(device=trainer.device, configuration=trainer.configuration_name,
                   batch_size=getattr(trainer, "batch_size", None) or
                   trainer.configuration_manager.batch_size,  # per GPU, once initialised
                   patch_size=trainer.configuration_manager.patch_size,
                   sam2_size=sam2["size"], planned_gb=sam2.get("gpu_memory_target_gb"),
                   device_gb=device_memory_gb(trainer.device))
