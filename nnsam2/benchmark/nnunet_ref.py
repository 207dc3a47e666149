"""nnU-Net's own default 2D U-Net as the reference, built through nnU-Net's plans -> network path:
the ``architecture`` entry of an nnU-Net plans file, or (nnsam2 plans, other patches) the one
nnU-Net's ``ExperimentPlanner`` plans on a scratch dataset whose median shape is the patch.
"""
import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence, Tuple

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

from nnsam2.utils.nnunet_env import temporary_nnunet_folders

logger = logging.getLogger(__name__)

SCRATCH_DATASET = "Dataset999_nnsam2benchmark"
# Large enough that nnU-Net's planner never shrinks the requested patch to fit its memory target.
PLANNER_GPU_MEMORY_GB = 1e6


@dataclass(frozen=True)
class UNetSpec:
    """An nnU-Net ``architecture`` entry plus the patch it runs at and where it came from."""

    class_name: str
    kwargs: dict = field(hash=False)
    requires_import: Tuple[str, ...]
    patch: Tuple[int, int]
    source: str


@dataclass(frozen=True)
class PlansInfo:
    """What the benchmark reads from an nnU-Net plans file (one configuration)."""

    dataset_name: str
    plans_name: str
    configuration: str
    patch: Tuple[int, int]
    batch_size: int
    channels: int
    classes: int
    spacing: Tuple[float, ...]
    sam2_size: Optional[str]
    unet: UNetSpec


def read_plans(dataset: str, plans_name: str = "nnSAM2Plans",
               configuration: str = "2d") -> PlansInfo:
    """Patch, batch size, channels, classes and the U-Net entry of ``nnUNet_preprocessed`` plans."""
    from batchgenerators.utilities.file_and_folder_operations import join, load_json
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    name = maybe_convert_to_dataset_name(dataset)
    folder = join(nnUNet_preprocessed, name)
    plans_file = join(folder, plans_name + ".json")
    plans_manager = PlansManager(plans_file)
    manager = plans_manager.get_configuration(configuration)
    dataset_json = load_json(join(folder, "dataset.json"))
    patch = tuple(int(p) for p in manager.patch_size)
    if len(patch) != 2:
        raise ValueError(f"configuration {configuration!r} of {plans_file} is not 2D: {patch}")
    channels = determine_num_input_channels(plans_manager, manager, dataset_json)
    classes = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    if manager.network_arch_class_name.startswith("nnsam2."):  # nnsam2 plans describe SAM2
        unet = unet_from_planner(patch, channels, classes, tuple(manager.spacing))
    else:
        unet = UNetSpec(manager.network_arch_class_name, dict(manager.network_arch_init_kwargs),
                        tuple(manager.network_arch_init_kwargs_req_import), patch,
                        f"plans: {name}/{plans_name}.json, configuration {configuration!r}")
    return PlansInfo(
        dataset_name=name, plans_name=plans_name, configuration=configuration, patch=patch,
        batch_size=int(manager.batch_size), channels=channels, classes=classes,
        spacing=tuple(float(s) for s in manager.spacing),
        sam2_size=manager.configuration.get("sam2", {}).get("size"), unet=unet)


@contextlib.contextmanager
def _scratch_dataset(channels: int, classes: int) -> Iterator[str]:
    """A throw-away raw dataset + fingerprint that nnU-Net's planner constructor can read."""
    dataset_json = dict(channel_names={str(i): f"channel{i}" for i in range(channels)},
                        labels={"background": 0, **{f"class{i}": i for i in range(1, classes)}},
                        numTraining=0, file_ending=".nii.gz", dataset={})
    fingerprint = dict(median_relative_size_after_cropping=1.0)
    with tempfile.TemporaryDirectory(prefix="nnsam2_benchmark_") as tmp, \
            temporary_nnunet_folders(tmp) as paths:
        for var, filename, content in (("nnUNet_raw", "dataset.json", dataset_json),
                                       ("nnUNet_preprocessed", "dataset_fingerprint.json",
                                        fingerprint)):
            os.makedirs(paths[var] / SCRATCH_DATASET)
            with open(paths[var] / SCRATCH_DATASET / filename, "w") as f:
                json.dump(content, f)
        yield SCRATCH_DATASET


def unet_from_planner(patch: Sequence[int], channels: int, classes: int,
                      spacing: Sequence[float] = (1.0, 1.0)) -> UNetSpec:
    """nnU-Net's default 2D U-Net for ``patch`` from nnU-Net's own ``ExperimentPlanner`` (at the
    patch padded to the planner's pooling stride, if it pads it: the spec's ``patch``)."""
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import \
        ExperimentPlanner

    with _scratch_dataset(channels, classes) as name:
        planner = ExperimentPlanner(name, gpu_memory_target_in_gb=PLANNER_GPU_MEMORY_GB)
        plan = planner.get_plans_for_configuration(
            tuple(spacing), tuple(patch), "nnsam2_benchmark",
            approximate_n_voxels_dataset=1e15, _cache={})
    arch = plan["architecture"]
    planned = tuple(int(p) for p in plan["patch_size"])
    if planned != tuple(patch):
        logger.warning("nnU-Net's planner pads patch %s to %s for its U-Net", tuple(patch), planned)
    return UNetSpec(arch["network_class_name"], dict(arch["arch_kwargs"]),
                    tuple(arch["_kw_requires_import"]), planned,
                    f"nnU-Net ExperimentPlanner.get_plans_for_configuration (spacing "
                    f"{tuple(spacing)}, median shape = patch {tuple(patch)})")


def build_unet(spec: UNetSpec, channels: int, classes: int) -> nn.Module:
    """The U-Net of ``spec`` through nnU-Net's ``get_network_from_plans`` (no deep supervision)."""
    return get_network_from_plans(spec.class_name, spec.kwargs, spec.requires_import, channels,
                                  classes, allow_init=True, deep_supervision=False)
