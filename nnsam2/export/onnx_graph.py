"""The inference network as an ONNX graph with dynamic batch and spatial size, checked with
ONNX Runtime against PyTorch.

Export uses torch's TorchScript-based exporter (``dynamo=False``): it traces one forward pass
and records the arithmetic on tensor sizes as graph operations, so the graph takes any batch
size and any H, W that are multiples of 32; it needs only ``onnx`` (the dynamo exporter also
needs ``onnxscript``).

Tracing keeps one side of each Python branch on sizes. In Hiera that is whether a window
partition pads: :func:`trace_size` picks an H, W at which every stage that can ever need
padding does, so the traced graph pads (by a size-dependent amount, zero where none is needed)
and crops back; :func:`check_onnx` compares at a second size to catch anything else.
"""
import contextlib
import logging
import math
import warnings
from typing import Iterable, List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from nnsam2.network.sam2_net import SIZE_MULTIPLE, SAM2SegNet
from nnsam2.utils.nnunet_env import UsageError

logger = logging.getLogger(__name__)

INPUT_NAME, OUTPUT_NAME = "image", "logits"
OPSET = 17
# Largest |ONNX Runtime - PyTorch| accepted on the float32 logits. Both run the same float32
# graph with different kernels (fused attention, convolution algorithms): differences are
# rounding, ~1e-5 on logits of magnitude ~10; an export error (a baked size, a wrong branch)
# changes logits by O(1).
TOLERANCE = 1e-3
INSTALL_HINT = 'pip install "nnsam2[onnx]"  (the packages onnx and onnxruntime)'


class InferenceGraph(nn.Module):
    """What is exported: the network's computation without its size check (a Python raise)
    and without its autocast switch (export runs in float32)."""

    def __init__(self, net: SAM2SegNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net._forward(x)  # (B, C, H, W) -> (B, K, H, W)


def require_onnx():
    """The onnxruntime module, or a UsageError that says what to install."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it to write the file)
        import onnxruntime
    except ImportError as e:
        raise UsageError(f"ONNX export needs onnx and onnxruntime, which are not installed "
                         f"({e.name} is missing): {INSTALL_HINT}") from e
    return onnxruntime


def window_sizes(net: SAM2SegNet) -> List[int]:
    """Window sizes (tokens) of the trunk's windowed-attention blocks."""
    return sorted({m.window_size for m in net.image_encoder.trunk.modules()
                   if getattr(m, "window_size", 0) and hasattr(m, "attn")})


def trace_size(net: SAM2SegNet) -> Tuple[int, int]:
    """(H, W): distinct multiples of 32 whose quotients are coprime to every window size.

    A stage at stride s partitions (H / s) tokens into windows of w; with H = 32 k and k coprime
    to w, it pads whenever some other multiple of 32 could make it pad (and never otherwise).
    """
    product = math.prod(window_sizes(net)) or 1
    ks = [k for k in range(3, 64) if math.gcd(k, product) == 1][:2]
    return ks[0] * SIZE_MULTIPLE, ks[1] * SIZE_MULTIPLE


@contextlib.contextmanager
def _quiet_tracing():
    # The traced branches are the intended ones (see the module docstring) and the result is
    # checked numerically; torch's per-branch tracer warnings would only alarm users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.interface, used by the exporter
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        yield


def export_onnx(net: SAM2SegNet, path: str, num_input_channels: int) -> Tuple[int, int]:
    """Write ``net`` (fused, eval mode) to ``path``; returns the traced (H, W)."""
    height, width = trace_size(net)
    example = torch.randn(2, num_input_channels, height, width)
    axes = {0: "batch", 2: "height", 3: "width"}
    with _quiet_tracing(), torch.no_grad():
        torch.onnx.export(InferenceGraph(net).eval(), (example,), path, dynamo=False,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, opset_version=OPSET)
    logger.info("nnsam2_export: traced at %dx%d (batch 2), opset %d", height, width, OPSET)
    return height, width


def check_onnx(net: SAM2SegNet, path: str, shapes: Iterable[Sequence[int]],
               seed: int = 0) -> dict:
    """Run PyTorch and ONNX Runtime on the same random inputs of each shape (B, C, H, W).

    Returns ``{"tolerance", "max_abs_difference", "shapes", "error", "passed"}``.
    """
    session = _session(path)
    generator = torch.Generator().manual_seed(seed)
    result = {"tolerance": TOLERANCE, "max_abs_difference": 0.0, "shapes": [], "error": None}
    for shape in shapes:
        x = torch.randn(*shape, generator=generator)
        result["shapes"].append(list(shape))
        with torch.no_grad():
            expected = net(x).numpy()  # what PyTorch inference computes
        try:  # a size baked into the graph makes a Reshape fail at other sizes
            got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        except Exception as e:
            result["error"] = f"input {list(shape)}: {str(e).splitlines()[0]}"
            break
        if got.shape != expected.shape:
            result["error"] = f"input {list(shape)}: output {got.shape}, PyTorch's {expected.shape}"
            break
        result["max_abs_difference"] = max(result["max_abs_difference"],
                                           float(np.abs(got - expected).max()))
    result["passed"] = result["error"] is None and result["max_abs_difference"] <= TOLERANCE
    return result


def _session(path: str):
    onnxruntime = require_onnx()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3  # errors only: graph-optimiser notes are not for users
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
