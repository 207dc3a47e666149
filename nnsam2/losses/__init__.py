"""Training losses (the SAM2LoRA composite loss)."""
from nnsam2.losses.composite import CompositeLoss

__all__ = ["CompositeLoss"]
