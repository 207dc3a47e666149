"""A training killed at chosen points (inside a checkpoint write, inside a training step) resumes
with ``--c`` from a readable checkpoint at the right epoch."""
import pytest

from nnsam2.utils.safe_torch_load import load_nnunet_checkpoint
from tests.helpers.commands import run, run_together
from tests.helpers.workspaces import QUICK_TRAINING, copy_workspace, model_folder

COMMAND = ["nnsam2_train", "990", "2d", "0", "-tr", "SAM2FaultyTrainer", "-device", "cpu",
           "--random-init"]
KILL_POINTS = ("write:2", "step:2")


@pytest.fixture(scope="module")
def killed(demo_planned, tmp_path_factory):
    """A fresh training of the faulty trainer killed at each of KILL_POINTS, each in its own copy
    of the planned demo dataset, all at once (one thread each): {kill point: (fold folder, env)}."""
    workspaces = {}
    for die_at in KILL_POINTS:
        root, env = copy_workspace(demo_planned, tmp_path_factory.mktemp("faults"))
        env["nnUNet_n_proc_DA"] = QUICK_TRAINING["nnUNet_n_proc_DA"]  # its own validation is off
        workspaces[die_at] = (model_folder(root, "SAM2FaultyTrainer") / "fold_0", env)
    died = run_together(*[(COMMAND, {**env, "DIE_AT": die_at, "OMP_NUM_THREADS": "1"})
                          for die_at, (_, env) in workspaces.items()], ok=False)
    for die_at, result in zip(KILL_POINTS, died):
        assert result.returncode == 3, (die_at, result.stderr[-3000:])
    return workspaces


def test_killed_inside_a_checkpoint_write(killed):
    fold, env = killed["write:2"]  # died writing epoch 2's checkpoint_latest
    latest = load_nnunet_checkpoint(fold / "checkpoint_latest.pth")  # intact, not half-written
    assert latest["current_epoch"] == 1
    resumed = run(*COMMAND, "--c", env=env)
    assert "checkpoint_latest.pth (epoch 1)" in resumed.stdout
    assert load_nnunet_checkpoint(fold / "checkpoint_final.pth")["current_epoch"] == 3


def test_killed_in_a_step_then_damaged_latest_falls_back(killed):
    fold, env = killed["step:2"]  # died in epoch 2's first training step
    assert load_nnunet_checkpoint(fold / "checkpoint_latest.pth")["current_epoch"] == 2
    best_epoch = load_nnunet_checkpoint(fold / "checkpoint_best.pth")["current_epoch"]
    (fold / "checkpoint_latest.pth").write_bytes(b"")  # what a non-atomic writer leaves
    resumed = run(*COMMAND, "--c", env=env)
    output = resumed.stdout + resumed.stderr
    assert "checkpoint_latest.pth is empty (0 bytes)" in output
    assert f"checkpoint_best.pth (epoch {best_epoch}) instead" in output
    assert load_nnunet_checkpoint(fold / "checkpoint_final.pth")["current_epoch"] == 3
