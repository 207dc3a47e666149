"""The CPU demo's trainer (``nnsam2_demo``): not for real training."""
from nnsam2.nnunet.trainers import SAM2DualAdapterTrainer


class SAM2DualAdapterTrainer_CPUDemo(SAM2DualAdapterTrainer):
    """Short, higher-LR schedule for the random-init toy demo on a CPU."""
    sam2_initial_lr = 2e-3
    sam2_num_epochs = 6
    sam2_iterations_per_epoch = 30
    sam2_val_iterations_per_epoch = 10
