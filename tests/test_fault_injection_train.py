"""A training killed at chosen points (inside a checkpoint write, inside a training step) resumes
with ``--c`` from a readable checkpoint at the right epoch."""
import textwrap

import pytest

from nnsam2.nnunet.checkpointing import CHECKPOINT_NAMES
from nnsam2.nnunet.safe_load import load_nnunet_checkpoint
from tests.test_end_to_end import model_folder, planned_workspace, run

FAULTY_TRAINER = textwrap.dedent('''
    import os
    from nnsam2.nnunet import checkpointing
    from nnsam2.nnunet.trainers import SAM2DualAdapterTrainer_LW

    DIE_AT = os.environ.get("DIE_AT", "")  # "write:<epoch>" or "step:<epoch>"


    def half_then_die(obj, path):
        with open(path, "wb") as f:
            f.write(b"PK\\x03\\x04 half a checkpoint")
            f.flush()
        os._exit(3)  # the process dies inside the write: no cleanup, no exception handling


    class SAM2FaultyTrainer(SAM2DualAdapterTrainer_LW):
        sam2_num_epochs = 3
        sam2_iterations_per_epoch = 2
        sam2_val_iterations_per_epoch = 1
        sam2_initial_lr = 1e-3

        def on_train_start(self):
            self.save_every = 1  # checkpoint_latest after every epoch
            super().on_train_start()

        def _write_checkpoint(self, checkpoint, filename):
            if DIE_AT == f"write:{checkpoint['current_epoch']}":
                return checkpointing.write(checkpoint, filename, save=half_then_die)
            super()._write_checkpoint(checkpoint, filename)

        def train_step(self, batch):
            if DIE_AT == f"step:{self.current_epoch}":
                os._exit(3)
            return super().train_step(batch)

        def perform_actual_validation(self, save_probabilities=False):
            pass  # not what these tests are about
''')


@pytest.fixture(scope="module")
def faulty_workspace(tmp_path_factory):
    root, env = planned_workspace(tmp_path_factory.mktemp("faults"), num_train=5, num_test=1,
                                  faulty_trainers=FAULTY_TRAINER)
    env["nnUNet_n_proc_DA"] = "0"  # training starts no augmentation workers (planning needs >0)
    return root, env


@pytest.mark.parametrize("die_at,resume_epoch", [("write:2", 1), ("step:2", 2)])
def test_killed_training_resumes_from_a_readable_checkpoint(faulty_workspace, die_at,
                                                            resume_epoch):
    root, env = faulty_workspace
    fold = model_folder(root, "SAM2FaultyTrainer") / "fold_0"
    for name in CHECKPOINT_NAMES:  # each case starts a fresh training
        (fold / name).unlink(missing_ok=True)
    command = ["nnsam2_train", "990", "2d", "0", "-tr", "SAM2FaultyTrainer", "-device", "cpu",
               "--random-init"]
    died = run(*command, env={**env, "DIE_AT": die_at}, ok=False)
    assert died.returncode == 3
    latest = load_nnunet_checkpoint(fold / "checkpoint_latest.pth")  # intact, not half-written
    assert latest["current_epoch"] == resume_epoch
    resumed = run(*command, "--c", env=env)
    assert f"checkpoint_latest.pth (epoch {resume_epoch})" in resumed.stdout
    assert load_nnunet_checkpoint(fold / "checkpoint_final.pth")["current_epoch"] == 3


def test_damaged_latest_checkpoint_falls_back(faulty_workspace):
    root, env = faulty_workspace
    fold = model_folder(root, "SAM2FaultyTrainer") / "fold_0"
    for name in CHECKPOINT_NAMES:
        (fold / name).unlink(missing_ok=True)
    command = ["nnsam2_train", "990", "2d", "0", "-tr", "SAM2FaultyTrainer", "-device", "cpu",
               "--random-init"]
    run(*command, env={**env, "DIE_AT": "step:2"}, ok=False)
    (fold / "checkpoint_latest.pth").write_bytes(b"")  # what a non-atomic writer leaves
    resumed = run(*command, "--c", env=env)
    assert "checkpoint_latest.pth cannot be read" in resumed.stdout + resumed.stderr
    assert "continuing from" in resumed.stdout + resumed.stderr
    assert load_nnunet_checkpoint(fold / "checkpoint_final.pth")["current_epoch"] == 3
