"""The whole-case benchmark's models: a temporary nnU-Net workspace, planned and preprocessed for
nnsam2 (nnSAM2Plans, 2d) and nnU-Net (nnUNetPlans, 2d), each model trained a few iterations by
nnU-Net's own loop with the short trainers of ``nnsam2.training.trainers.variants.benchmarking``
(only time is measured)."""
import contextlib
import json
import shutil
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Union

NNUNET_PLANS = "nnUNetPlans"
NNUNET_TRAINER = "WholeCaseBench_nnUNetTrainer"
SAM2_TRAINERS = {"lw": "WholeCaseBench_LW", "hp": "WholeCaseBench_HP",  # nnsam2 variant ->
                 "lora": "WholeCaseBench_LoRA"}  # its short trainer


@contextlib.contextmanager
def workspace(root: Path) -> Iterator[Dict[str, Path]]:
    """nnU-Net's folders under ``root`` for the duration, nnsam2's trainers findable, no
    torch.compile (nnU-Net's variable, restored afterwards with the folders)."""
    from nnsam2.training.trainer_lookup import use_nnsam2_trainers
    from nnsam2.utils.nnunet_env import temporary_environ, temporary_nnunet_folders
    use_nnsam2_trainers()
    with temporary_environ(nnUNet_compile="false"), temporary_nnunet_folders(root) as paths:
        yield paths


def plan_and_preprocess(dataset_id: int, sam2_size: str, patch: Optional[Sequence[int]] = None,
                        progress: bool = False) -> None:
    """Fingerprint, nnsam2's plans (2d) and nnU-Net's default plans, both 2d configurations
    preprocessed."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import plan_experiments, preprocess

    from nnsam2.experiment_planning.plan_and_preprocess_api import plan_and_preprocess as plan_nnsam2

    plan_nnsam2([dataset_id], sam2_size=sam2_size, patch_size=patch, num_processes=[1],
                num_processes_fingerprint=1, clean=True, progress_bar=progress)
    plan_experiments([dataset_id])
    preprocess([dataset_id], NNUNET_PLANS, configurations=["2d"], num_processes=[1],
               show_progress_bar=progress)


def write_split(preprocessed: Path, folds: int) -> None:
    """``splits_final.json`` with ``folds`` folds in the dataset's preprocessed folder (nnU-Net's
    own split needs 5 or more cases): fold k validates on case k mod n and trains on the others
    (on all of them when there is one case)."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    data = str(preprocessed / f"{NNUNET_PLANS}_2d")
    ids = sorted(infer_dataset_class(data).get_identifiers(data))
    val = [ids[k % len(ids)] for k in range(folds)]
    splits = [dict(train=[i for i in ids if i != v] or ids, val=[v]) for v in val]
    (preprocessed / "splits_final.json").write_text(json.dumps(splits, indent=1))


def train(dataset_id: int, trainer: str, plans: str, device: str, iterations: int,
          folds: Sequence[Union[int, str]] = ("all",)) -> Path:
    """Train ``folds`` with ``trainer`` for ``iterations`` iterations each in this process
    (nnsam2: random SAM2 init), no augmentation workers; returns the model folder."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    folder = Path(get_output_folder(maybe_convert_to_dataset_name(dataset_id), trainer, plans, "2d"))
    for fold in folds:
        _train_fold(dataset_id, trainer, plans, device, iterations, fold, folder / f"fold_{fold}")
    return folder


def _train_fold(dataset_id: int, trainer: str, plans: str, device: str, iterations: int,
                fold: Union[int, str], fold_folder: Path) -> None:
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from nnsam2.training import run_settings
    from nnsam2.utils.nnunet_env import temporary_environ

    threads = torch.get_num_threads()  # nnU-Net's trainer changes it
    if plans != NNUNET_PLANS:
        run_settings.save(str(fold_folder), run_settings.RunSettings("random", progress_bar=False))
    # the same seed for every fold: the same random SAM2 in each, as folds trained from one
    # checkpoint have (one frozen store file, per-fold deltas as in real ensembles)
    torch.manual_seed(0)
    try:
        with temporary_environ(nnUNet_n_proc_DA="0"):
            model = get_trainer_from_args(str(dataset_id), "2d", fold, trainer, plans,
                                          device=torch.device(device))
            model.num_iterations_per_epoch = iterations
            model.run_training()
    finally:
        torch.set_num_threads(threads)
    shutil.rmtree(fold_folder / "validation", ignore_errors=True)
