"""nnsam2_plan_and_preprocess: nnU-Net fingerprint + SAM2 planner + nnU-Net preprocessing."""
import argparse
import contextlib
import logging
import os
import shutil

from nnsam2.cli.common import run_cli, show_progress
from nnsam2.network.configs import SIZES
from nnsam2.nnunet.environment import UsageError, dataset_name, require_env
from nnsam2.nnunet.memory_plan import MEM_CONFIGURATION, MIN_SLICES
from nnsam2.nnunet.planner import PLANNED_CONFIGURATIONS, PLANS_NAME, nnSAM2Planner
from nnsam2.nnunet.raw_data_check import check_raw_dataset

logger = logging.getLogger(__name__)


def plan_and_preprocess(dataset_ids, *, sam2_size="tiny", patch_size=None,
                        gpu_memory_target=8.0, configurations=("2d",), num_processes=(4,),
                        num_processes_fingerprint=4, verify_dataset_integrity=False,
                        clean=False, no_pp=False, plans_name=PLANS_NAME, verbose=False,
                        planner="nnSAM2Planner", preprocessor_name="DefaultPreprocessor",
                        overwrite_target_spacing=None,
                        fingerprint_extractor="DatasetFingerprintExtractor",
                        progress_bar=True) -> None:
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, preprocess
    require_env("nnUNet_raw", "nnUNet_preprocessed")
    if "__" in plans_name:
        raise UsageError(f"plans name {plans_name!r} must not contain '__' (nnU-Net splits on it)")
    if planner != nnSAM2Planner.__name__:
        raise UsageError(f"-pl {planner}: nnsam2 plans with {nnSAM2Planner.__name__} only (nnU-Net's "
                         f"planners plan U-Nets; use nnUNetv2_plan_and_preprocess for those)")
    if overwrite_target_spacing is not None and len(overwrite_target_spacing) != 3:
        raise UsageError(f"-overwrite_target_spacing takes 3 values (z y x, as nnU-Net), got "
                         f"{len(overwrite_target_spacing)}")
    unknown = [c for c in configurations if c not in PLANNED_CONFIGURATIONS]
    if unknown:
        raise UsageError(f"nnsam2 plans the configurations {', '.join(PLANNED_CONFIGURATIONS)} "
                         f"({MEM_CONFIGURATION} for 3D datasets only); got -c {' '.join(unknown)}")
    names = [dataset_name(d) for d in dataset_ids]
    for name in names:  # before nnU-Net writes anything into nnUNet_preprocessed
        check_raw_dataset(os.path.join(os.environ["nnUNet_raw"], name),
                          full=verify_dataset_integrity, num_processes=num_processes_fingerprint)
    ids = [int(name[7:10]) for name in names]
    extract_fingerprints(ids, fingerprint_extractor, num_processes=num_processes_fingerprint,
                         check_dataset_integrity=False, clean=clean, verbose=verbose,
                         show_progress_bar=progress_bar)
    for d in ids:
        nnSAM2Planner(d, gpu_memory_target, preprocessor_name, plans_name,
                      overwrite_target_spacing, sam2_size=sam2_size, patch_size=patch_size,
                      clean=clean).plan_experiment()
    if not no_pp:
        for d, name in zip(ids, names):
            todo, folders = _configurations_to_preprocess(name, plans_name, configurations)
            with _removed_if_interrupted(folders):
                preprocess([d], plans_name, configurations=todo,
                           num_processes=list(num_processes)[:len(todo)] or [4],
                           verbose=verbose, show_progress_bar=progress_bar)


def _configurations_to_preprocess(name: str, plans_name: str, configurations) -> tuple:
    """(configurations, the preprocessed-data folders they write): one configuration per folder
    (``2d_mem`` reads ``2d``'s data); a configuration the plans do not have (``2d_mem`` of a 2D
    dataset) is refused by name."""
    from nnunetv2.utilities.file_path_utilities import load_json
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    plans_file = os.path.join(os.environ["nnUNet_preprocessed"], name, plans_name + ".json")
    manager = PlansManager(load_json(plans_file))
    todo, identifiers = [], set()
    for c in configurations:
        if c not in manager.available_configurations:
            raise UsageError(f"{name} has no {c!r} configuration in {plans_file} (planned: "
                             f"{', '.join(manager.available_configurations)}): {MEM_CONFIGURATION} "
                             f"is planned for 3D datasets only (stacks of at least "
                             f"{MIN_SLICES} slices)")
        identifier = manager.get_configuration(c).data_identifier
        if identifier not in identifiers:
            identifiers.add(identifier)
            todo.append(c)
    folder = os.path.dirname(plans_file)
    return todo, [os.path.join(folder, i) for i in identifiers]


@contextlib.contextmanager
def _removed_if_interrupted(folders):
    """A half-written preprocessed folder looks complete to training: remove it on any failure
    (nnU-Net's preprocessor deletes an older one before it starts anyway)."""
    try:
        yield
    except BaseException:
        for folder in folders:
            if os.path.isdir(folder):
                shutil.rmtree(folder, ignore_errors=True)
                logger.error("preprocessing stopped: removed the partial %s", folder)
        raise


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_plan_and_preprocess", description=__doc__)
    p.add_argument("-d", nargs="+", required=True, help="dataset ids or names")
    p.add_argument("--sam2-size", default="tiny", choices=list(SIZES),
                   help="SAM2 size recorded in the plans (default: tiny)")
    p.add_argument("--patch-size", nargs=2, type=int, metavar=("H", "W"),
                   help="explicit 2D patch size (rounded up to multiples of 32)")
    p.add_argument("-gpu_memory_target", type=float, default=8.0,
                   help="GPU memory (GB) the batch size is planned for (default: 8)")
    p.add_argument("-c", nargs="+", default=["2d"],
                   help="configurations to preprocess: 2d (default); 2d_mem, planned for 3D "
                        "datasets, reads the 2d data (preprocessing 2d serves both)")
    p.add_argument("-np", nargs="+", type=int, default=[4], help="processes for preprocessing")
    p.add_argument("-npfp", type=int, default=4, help="processes for fingerprint extraction")
    p.add_argument("-overwrite_plans_name", default=PLANS_NAME, help="plans identifier")
    p.add_argument("--verify_dataset_integrity", action="store_true",
                   help="also read every voxel (label values, NaN); headers and file layout are "
                        "always checked")
    p.add_argument("--clean", action="store_true", help="redo the fingerprint and overwrite")
    p.add_argument("--no_pp", action="store_true", help="plan only, do not preprocess")
    p.add_argument("-pl", default="nnSAM2Planner",
                   help="experiment planner: nnSAM2Planner (the only one; others are refused)")
    p.add_argument("-preprocessor_name", default="DefaultPreprocessor",
                   help="nnU-Net preprocessor class recorded in the plans")
    p.add_argument("-overwrite_target_spacing", nargs=3, type=float, metavar=("Z", "Y", "X"),
                   help="target spacing instead of nnU-Net's (the 2d configuration uses Y X)")
    p.add_argument("-fpe", default="DatasetFingerprintExtractor",
                   help="nnU-Net fingerprint extractor class")
    p.add_argument("--no_pbar", action="store_true",
                   help="no progress bars (they are also off when the output is not a terminal)")
    p.add_argument("--verbose", action="store_true")
    return p


def main(argv=None) -> None:
    a = parser().parse_args(argv)
    run_cli("nnsam2_plan_and_preprocess", lambda: plan_and_preprocess(
        a.d, sam2_size=a.sam2_size, patch_size=a.patch_size, gpu_memory_target=a.gpu_memory_target,
        configurations=a.c, num_processes=a.np, num_processes_fingerprint=a.npfp,
        verify_dataset_integrity=a.verify_dataset_integrity, clean=a.clean, no_pp=a.no_pp,
        plans_name=a.overwrite_plans_name, verbose=a.verbose, planner=a.pl,
        preprocessor_name=a.preprocessor_name, overwrite_target_spacing=a.overwrite_target_spacing,
        fingerprint_extractor=a.fpe, progress_bar=show_progress(a.no_pbar)))
