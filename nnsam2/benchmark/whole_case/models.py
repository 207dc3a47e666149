"""The whole-case benchmark's models: a temporary nnU-Net workspace, planned and preprocessed for
nnsam2 (nnSAM2Plans, 2d) and nnU-Net (nnUNetPlans, 2d), each model trained a few iterations by
nnU-Net's own loop with the short trainers of ``nnsam2.training.trainers.variants.benchmarking``
(only time is measured)."""
import contextlib
import shutil
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

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


def train(dataset_id: int, trainer: str, plans: str, device: str, iterations: int) -> Path:
    """Train fold 'all' with ``trainer`` for ``iterations`` iterations in this process (nnsam2:
    random SAM2 init), no augmentation workers; returns the model folder."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnsam2.training import run_settings
    from nnsam2.utils.nnunet_env import temporary_environ

    threads = torch.get_num_threads()  # nnU-Net's trainer changes it
    folder = Path(get_output_folder(maybe_convert_to_dataset_name(dataset_id), trainer, plans, "2d"))
    if plans != NNUNET_PLANS:
        run_settings.save(str(folder / "fold_all"),
                          run_settings.RunSettings("random", progress_bar=False))
    try:
        with temporary_environ(nnUNet_n_proc_DA="0"):
            model = get_trainer_from_args(str(dataset_id), "2d", "all", trainer, plans,
                                          device=torch.device(device))
            model.num_iterations_per_epoch = iterations
            model.run_training()
    finally:
        torch.set_num_threads(threads)
    shutil.rmtree(folder / "fold_all" / "validation", ignore_errors=True)
    return folder
