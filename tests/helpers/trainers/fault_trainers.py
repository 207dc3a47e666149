"""A test-only trainer that kills its own process at a chosen point (``DIE_AT`` in its
environment: "write:<epoch>" dies inside a checkpoint write, "step:<epoch>" inside a training
step), for the fault-injection tests of ``--c``."""
import os

from nnsam2.training import checkpoint_files
from nnsam2.training.trainers.method_trainers import SAM2DualAdapterTrainer_LW

DIE_AT = os.environ.get("DIE_AT", "")


def half_then_die(obj, path):
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 half a checkpoint")
        f.flush()
    os._exit(3)  # the process dies inside the write: no cleanup, no exception handling


class SAM2FaultyTrainer(SAM2DualAdapterTrainer_LW):
    sam2_num_epochs = 3
    sam2_iterations_per_epoch = 1  # the kill points are per epoch
    sam2_val_iterations_per_epoch = 1
    sam2_initial_lr = 1e-3

    def on_train_start(self):
        self.save_every = 1  # checkpoint_latest after every epoch
        super().on_train_start()

    def _write_checkpoint(self, checkpoint, filename):
        if DIE_AT == f"write:{checkpoint['current_epoch']}":
            return checkpoint_files.write(checkpoint, filename, save=half_then_die)
        super()._write_checkpoint(checkpoint, filename)

    def train_step(self, batch):
        if DIE_AT == f"step:{self.current_epoch}":
            os._exit(3)
        return super().train_step(batch)

    def perform_actual_validation(self, save_probabilities=False):
        pass  # not what these tests are about
