"""Small helpers shared by the network, nnU-Net integration and CLIs."""
