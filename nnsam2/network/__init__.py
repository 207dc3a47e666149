"""The adapted SAM2 network: plain PyTorch, no nnU-Net."""
from nnsam2.network.build import build_memory_network, build_network
from nnsam2.network.sam2_weights import CheckpointError, load_sam2_checkpoint
from nnsam2.network.configs import ADAPTER_KINDS, SIZES, AdapterCfg
from nnsam2.network.memory_net import SAM2MemSegNet
from nnsam2.network.sam2_net import SAM2SegNet
from nnsam2.network.summary import model_summary, parameter_report

__all__ = ["build_network", "build_memory_network", "load_sam2_checkpoint", "CheckpointError",
           "AdapterCfg", "ADAPTER_KINDS", "SIZES", "SAM2SegNet", "SAM2MemSegNet", "model_summary",
           "parameter_report"]
