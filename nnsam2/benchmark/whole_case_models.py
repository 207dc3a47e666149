"""The whole-case benchmark's models: a temporary nnU-Net workspace, planned and preprocessed for
nnsam2 (nnSAM2Plans, 2d) and nnU-Net (nnUNetPlans, 2d), each model trained for a few iterations
by nnU-Net's own training loop (the weights only have to exist: only time is measured)."""
import contextlib
import os
import shutil
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

ENV_ITERATIONS = "NNSAM2_WHOLE_CASE_ITERATIONS"
NNUNET_PLANS = "nnUNetPlans"
NNUNET_TRAINER = "WholeCaseBench_nnUNetTrainer"
# nnsam2 variant -> (trainer in the generated module, the nnsam2 trainer it shortens)
SAM2_TRAINERS = {"lw": ("WholeCaseBench_LW", "SAM2DualAdapterTrainer_LW"),
                 "hp": ("WholeCaseBench_HP", "SAM2DualAdapterTrainer"),
                 "lora": ("WholeCaseBench_LoRA", "SAM2LoRATrainer")}

_TRAINERS_SOURCE = '''"""Written by nnsam2's whole-case benchmark: one epoch of a few iterations, no validation."""
import os
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnsam2.nnunet.trainers import {bases}


class _Short:
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = int(os.environ.get("{env}", "2"))
        self.num_val_iterations_per_epoch = 1

    def perform_actual_validation(self, save_probabilities=False):
        pass  # the benchmark times prediction only


class {nnunet}(_Short, nnUNetTrainer):
    pass
{sam2}'''


def write_trainers(folder: Path) -> Path:
    """The benchmark's short trainers as a module in ``folder`` (for ``nnUNet_extTrainer``)."""
    folder.mkdir(parents=True, exist_ok=True)
    sam2 = "".join(f"\n\nclass {name}(_Short, {base}):\n    pass\n"
                   for name, base in SAM2_TRAINERS.values())
    bases = ", ".join(sorted({base for _, base in SAM2_TRAINERS.values()}))
    (folder / "whole_case_trainers.py").write_text(_TRAINERS_SOURCE.format(
        bases=bases, env=ENV_ITERATIONS, nnunet=NNUNET_TRAINER, sam2=sam2))
    return folder


@contextlib.contextmanager
def workspace(root: Path, iterations: int) -> Iterator[Dict[str, Path]]:
    """nnU-Net's folders under ``root`` and the benchmark's trainers, for the duration only: every
    environment variable is restored afterwards (nnsam2_train sets some of its own)."""
    from nnsam2.nnunet.environment import use_nnsam2_trainers

    saved = dict(os.environ)
    paths = {v: root / v for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    try:
        for var, path in paths.items():
            path.mkdir(parents=True, exist_ok=True)
            os.environ[var] = str(path)
        os.environ["nnUNet_extTrainer"] = str(write_trainers(root / "trainers"))
        use_nnsam2_trainers()
        os.environ[ENV_ITERATIONS] = str(iterations)
        os.environ.setdefault("nnUNet_n_proc_DA", "1")  # the planner sets torch threads to it
        os.environ["nnUNet_compile"] = "false"
        yield paths
    finally:
        os.environ.clear()
        os.environ.update(saved)


def plan_and_preprocess(dataset_id: int, sam2_size: str, patch: Optional[Sequence[int]] = None,
                        progress: bool = False) -> None:
    """Fingerprint, nnsam2's plans (2d) and nnU-Net's default plans, both 2d configurations
    preprocessed."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import plan_experiments, preprocess

    from nnsam2.cli.plan_and_preprocess import plan_and_preprocess as plan_nnsam2

    plan_nnsam2([dataset_id], sam2_size=sam2_size, patch_size=patch, num_processes=[1],
                num_processes_fingerprint=1, clean=True, progress_bar=progress)
    plan_experiments([dataset_id])
    preprocess([dataset_id], NNUNET_PLANS, configurations=["2d"], num_processes=[1],
               show_progress_bar=progress)


def train(dataset_id: int, trainer: str, plans: str, device: str) -> Path:
    """Train fold 'all' with ``trainer`` (nnsam2: random SAM2 init); returns the model folder."""
    import torch
    from nnunetv2.run.run_training import run_training
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnsam2.cli import train as nnsam2_train

    threads = torch.get_num_threads()  # both training entry points change it
    saved_da, os.environ["nnUNet_n_proc_DA"] = os.environ["nnUNet_n_proc_DA"], "0"  # no workers
    if plans == NNUNET_PLANS:
        run_training(str(dataset_id), "2d", "all", trainer, plans, device=torch.device(device))
    else:
        nnsam2_train.train(nnsam2_train.parser().parse_args(
            [str(dataset_id), "2d", "all", "-tr", trainer, "-p", plans, "-device", device,
             "--random-init", "--disable_progress_bar"]))
    torch.set_num_threads(threads)
    os.environ["nnUNet_n_proc_DA"] = saved_da
    folder = Path(get_output_folder(maybe_convert_to_dataset_name(dataset_id), trainer, plans, "2d"))
    shutil.rmtree(folder / "fold_all" / "validation", ignore_errors=True)
    return folder
