"""The plain module under the wrappers training and prediction put around a network."""
from torch import nn
from torch._dynamo import OptimizedModule


def unwrap(network: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    if isinstance(network, nn.parallel.DistributedDataParallel):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return network
