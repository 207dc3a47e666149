"""Interactive segmentation: user clicks and their path into nnU-Net's preprocessed data."""
