"""nnsam2's plan and preprocess: nnU-Net's fingerprint, the SAM2 planner, nnU-Net's preprocessing,
with the raw dataset checked before anything is written (as nnU-Net's
``plan_and_preprocess_api.py`` under ``nnUNetv2_plan_and_preprocess``)."""
import contextlib
import json
import logging
import os
import shutil

from nnsam2.experiment_planning.mem_configuration import MEM_CONFIGURATION, MIN_SLICES
from nnsam2.experiment_planning.planner import PLANNED_CONFIGURATIONS, PLANS_NAME, nnSAM2Planner
from nnsam2.experiment_planning.raw_data_check import check_raw_dataset
from nnsam2.utils.nnunet_env import UsageError, dataset_name, require_env

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
    check_preprocessor(preprocessor_name, "-preprocessor_name")
    names = [dataset_name(d) for d in dataset_ids]
    for name in names:  # before nnU-Net writes anything into nnUNet_preprocessed
        if not clean:  # nnU-Net reuses these; --clean replaces them
            check_json_files(os.path.join(os.environ["nnUNet_preprocessed"], name), plans_name)
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
    check_json_files(os.path.dirname(plans_file), plans_name)
    manager = PlansManager(load_json(plans_file))
    todo, identifiers = [], set()
    for c in configurations:
        if c in manager.available_configurations:
            check_preprocessor(manager.get_configuration(c).preprocessor_name,
                               f"{plans_file} configuration {c!r} preprocessor_name")
        else:
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


def check_preprocessor(name: str, where: str) -> None:
    """``name`` must resolve, as nnU-Net resolves it (in nnunetv2.preprocessing), to a
    DefaultPreprocessor subclass: nnU-Net would call any other name found there in every worker."""
    import nnunetv2
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    found = None
    if isinstance(name, str) and name.isidentifier():
        found = recursive_find_python_class(os.path.join(nnunetv2.__path__[0], "preprocessing"),
                                            name, "nnunetv2.preprocessing")
    if not (isinstance(found, type) and issubclass(found, DefaultPreprocessor)):
        raise UsageError(f"{where} {name!r} is not a preprocessor (a DefaultPreprocessor subclass "
                         f"in nnunetv2.preprocessing); use DefaultPreprocessor")


def check_json_files(folder: str, plans_name: str) -> None:
    """The JSON files nnU-Net reads back from ``folder`` (nnUNet_preprocessed/<dataset>) must
    parse: a truncated one would end in a JSONDecodeError naming no file."""
    for file in (plans_name + ".json", "dataset_fingerprint.json", "dataset.json"):
        path = os.path.join(folder, file)
        if not os.path.isfile(path):
            continue
        try:
            with open(path) as f:
                json.load(f)
        except (OSError, ValueError) as e:
            raise UsageError(f"{path}: not valid JSON ({e}); delete it or run again with --clean")


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
