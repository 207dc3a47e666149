"""Checkpoint contents for the tests: what an nnU-Net checkpoint holds, and a pickle that acts
when it is loaded (what a malicious checkpoint would do)."""
import numpy as np
import torch


def nnunet_like_checkpoint(net):
    """The non-tensor types nnU-Net checkpoints hold: numpy scalars in the log, a torch.device."""
    return {"network_weights": net.state_dict(), "optimizer_state": {"state": {}},
            "grad_scaler_state": None, "current_epoch": 3, "_best_ema": np.float64(0.5),
            "logging": {"mean_fg_dice": [np.float32(0.1), np.float64(0.2)], "lrs": [1e-4]},
            "init_args": {"plans": {}, "configuration": "2d", "fold": 0, "dataset_json": {},
                          "device": torch.device("cpu")},
            "trainer_name": "SAM2DualAdapterTrainer", "inference_allowed_mirroring_axes": (0, 1)}


class WritesAFile:
    """Unpickling this runs ``open(path, 'w')``: what a malicious checkpoint would do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))
