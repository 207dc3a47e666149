"""Running out of GPU memory during training ends with one line naming the planned batch and
patch and what to do (``nnsam2/training/out_of_memory.py``, hooked into
nnSAM2Trainer.run_training)."""
import json

import torch

from nnsam2.training import out_of_memory
from tests.helpers.commands import run
from tests.helpers.workspaces import QUICK_TRAINING, copy_workspace, model_folder


def test_message_names_the_plan_and_the_way_out():
    text = out_of_memory.message(device=torch.device("cuda", 0), configuration="2d",
                                 batch_size=2, patch_size=(1024, 1024), sam2_size="large",
                                 planned_gb=8.0, device_gb=7.8)
    assert text == ("cuda:0 ran out of memory training 2d with batch 2 of [1024, 1024] patches "
                    "(SAM2 large, planned for 8 GB; this GPU has 7.8 GB): plan again "
                    "(nnsam2_plan_and_preprocess) with a smaller --sam2-size, a smaller "
                    "--patch-size or -gpu_memory_target set to this GPU's memory, then train again")


def test_training_that_runs_out_of_memory_ends_in_one_line(demo_planned, tmp_path):
    root, env = copy_workspace(demo_planned, tmp_path)
    failed = run("nnsam2_train", "990", "2d", "0", "-tr", "SAM2OutOfMemoryTrainer", "-device",
                 "cpu", "--random-init", env={**env, **QUICK_TRAINING, "OMP_NUM_THREADS": "1"},
                 ok=False)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr[-3000:]
    # a step of the test trainer raises CUDA's error; the line names what was planned
    plans = json.loads((root / "nnUNet_preprocessed" / "Dataset990_Demo2D" /
                        "nnSAM2Plans.json").read_text())
    batch = plans["configurations"]["2d"]["batch_size"]
    assert failed.stderr.strip().splitlines()[-1] == (
        f"nnsam2_train: error: cpu ran out of memory training 2d with batch {batch} of [64, 64] "
        f"patches (SAM2 toy, planned for 8 GB): {out_of_memory.ADVICE}")
    fold = model_folder(root, "SAM2OutOfMemoryTrainer") / "fold_0"
    assert "ran out of memory" in next(fold.glob("training_log_*.txt")).read_text()
