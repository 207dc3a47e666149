"""nnsam2: nnU-Net v2 self-configuring segmentation with a prompt-free, adapter-tuned SAM2."""

__version__ = "0.1.0"
