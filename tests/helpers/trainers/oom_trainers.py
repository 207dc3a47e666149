"""A test-only trainer whose first training step runs out of GPU memory, as a batch too large for
the GPU would (for the one-line message of ``nnsam2/training/out_of_memory.py``)."""
import torch

from nnsam2.training.trainers.method_trainers import SAM2DualAdapterTrainer_LW


class SAM2OutOfMemoryTrainer(SAM2DualAdapterTrainer_LW):
    sam2_num_epochs = 1
    sam2_iterations_per_epoch = 1
    sam2_val_iterations_per_epoch = 1

    def train_step(self, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (test)")
