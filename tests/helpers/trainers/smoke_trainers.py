"""Test-only trainers: nnsam2's trainers with a few iterations (nnU-Net finds them through
``nnUNet_extTrainer``, which the test workspaces point at this folder). Their schedule is read
from the environment of each fresh training process: SMOKE_ITERATIONS, SMOKE_EPOCHS, and
SMOKE_SKIP_VALIDATION=1 for tests that only need the weights."""
import os

from nnsam2.training.trainers.method_trainers import (SAM2DualAdapterTrainer,
                                                      SAM2DualAdapterTrainer_FullDecoder,
                                                      SAM2DualAdapterTrainer_LW, SAM2LoRATrainer,
                                                      SAM2VanillaTrainer)
from nnsam2.training.trainers.interactive import (SAM2DualAdapterTrainer_Interactive,
                                                  SAM2DualAdapterTrainer_LW_Interactive,
                                                  SAM2LoRATrainer_Interactive)


class _Smoke:
    sam2_iterations_per_epoch = int(os.environ.get("SMOKE_ITERATIONS", "2"))
    sam2_val_iterations_per_epoch = 1
    sam2_initial_lr = 1e-3
    sam2_num_epochs = int(os.environ.get("SMOKE_EPOCHS", "1"))

    def perform_actual_validation(self, save_probabilities=False):
        if os.environ.get("SMOKE_SKIP_VALIDATION") != "1":
            super().perform_actual_validation(save_probabilities)


class SAM2SmokeTrainer(_Smoke, SAM2DualAdapterTrainer):
    pass


class SAM2SmokeTrainer_LW(_Smoke, SAM2DualAdapterTrainer_LW):
    pass


class SAM2SmokeTrainer_LoRA(_Smoke, SAM2LoRATrainer):
    pass


class SAM2SmokeTrainer_Vanilla(_Smoke, SAM2VanillaTrainer):
    pass


class SAM2SmokeTrainer_FullDecoder(_Smoke, SAM2DualAdapterTrainer_FullDecoder):
    pass


class SAM2SmokeTrainer_Interactive(_Smoke, SAM2DualAdapterTrainer_Interactive):
    pass


class SAM2SmokeTrainer_LW_Interactive(_Smoke, SAM2DualAdapterTrainer_LW_Interactive):
    pass


class SAM2SmokeTrainer_LoRA_Interactive(_Smoke, SAM2LoRATrainer_Interactive):
    pass
