"""Parameter counts and FLOPs per component, for logs, CLIs and benchmarks."""
import math
from typing import Dict, Sequence, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nnsam2.network.sam2_weights import MEMORY_KEYS

COMPONENTS = ("stem", "trunk", "peg", "adapters", "neck", "prompt_encoder", "decoder")
MEMORY = "memory"  # SAM2's memory attention and encoder: a component of the 2d_mem network only
MEMORY_MODULES = tuple(key.rstrip(".") for key in MEMORY_KEYS)


def component_of(name: str) -> str:
    """Component that a parameter or module name belongs to."""
    if name.startswith("stem"):
        return "stem"
    if ".adapter" in name or "lora_" in name:
        return "adapters"
    if name.startswith("image_pe") or ".peg" in name:
        return "peg"
    if name.partition(".")[0] in MEMORY_MODULES:
        return MEMORY
    if name.startswith("image_encoder.trunk"):
        return "trunk"
    if name.startswith(("image_encoder.neck", "no_mem_embed")):
        return "neck"
    if name.startswith("sam_prompt_encoder"):
        return "prompt_encoder"
    return "decoder"


def components(model: nn.Module) -> Tuple[str, ...]:
    """:data:`COMPONENTS`, plus ``memory`` for a network with SAM2's memory."""
    has_memory = any(component_of(name) == MEMORY for name, _ in model.named_parameters())
    return COMPONENTS + ((MEMORY,) if has_memory else ())


def parameter_report(model: nn.Module) -> Dict[str, dict]:
    """{component: {total, trainable, trainable_pct}} plus an ``all`` row."""
    counts = {c: [0, 0] for c in components(model)}
    for name, param in model.named_parameters():
        row = counts[component_of(name)]
        row[0] += param.numel()
        row[1] += param.numel() if param.requires_grad else 0
    counts["all"] = [sum(v[0] for v in counts.values()), sum(v[1] for v in counts.values())]
    return {c: dict(total=t, trainable=tr, trainable_pct=100.0 * tr / max(t, 1))
            for c, (t, tr) in counts.items()}


def _deform_conv_flops(x_shape, w_shape, *_, out_shape, **__) -> int:
    # torchvision deform_conv2d(input, weight, offset, mask, bias, ...), shapes only: 2 x the
    # convolution's MACs plus bilinear sampling (4 taps, multiply-add) per sampled input value.
    b, c_out, h, w = out_shape
    c_in_per_group, kh, kw = w_shape[1:]
    macs = b * c_out * h * w * c_in_per_group * kh * kw
    sampling = b * x_shape[1] * kh * kw * h * w * 8
    return 2 * macs + sampling


def _embedding_bag_flops(weight_shape, indices_shape, *args, out_shape, **kwargs) -> int:
    # _embedding_bag(weight, indices, offsets, scale_grad_by_freq, mode, sparse,
    # per_sample_weights, ...): gathers one row of the weight per index and sums each bag, after
    # scaling by per_sample_weights when given (a multiply-add per gathered value). Our
    # deformable convolution samples this way: 4 bilinear corners per sample, the same count as
    # torchvision's formula above.
    weighted = (args[4] if len(args) > 4 else kwargs.get("per_sample_weights")) is not None
    gathered = math.prod(indices_shape) * weight_shape[1]
    return gathered * (2 if weighted else 1)


def _flop_formulas() -> dict:
    aten = torch.ops.aten
    formulas = {aten._embedding_bag: _embedding_bag_flops,
                aten._embedding_bag_forward_only: _embedding_bag_flops}
    try:
        formulas[torch.ops.torchvision.deform_conv2d] = _deform_conv_flops
    except (AttributeError, RuntimeError):
        pass
    return formulas


@torch.no_grad()
def flops_by_component(model: nn.Module, input_shape: Sequence[int]) -> Dict[str, float]:
    """Forward GFLOPs (2 x multiply-accumulates) per component for one input of ``input_shape``."""
    param = next(model.parameters())
    x = torch.zeros(*input_shape, device=param.device, dtype=param.dtype)
    counter = FlopCounterMode(display=False, custom_mapping=_flop_formulas())
    was_training = model.training
    model.eval()
    with counter:
        model(x)
    model.train(was_training)
    # Counts are inclusive per module ("Global", "Root", "Root.a", "Root.a.b", ...): subtract
    # the direct children to get each module's own FLOPs, then sum those per component.
    inclusive = {name.partition(".")[2]: sum(ops.values())
                 for name, ops in counter.get_flop_counts().items() if name != "Global"}
    inclusive.setdefault("", 0)
    own = dict(inclusive)
    for name, flops in inclusive.items():
        parent = name.rpartition(".")[0]
        while parent not in inclusive:  # wrappers called through their inner modules
            parent = parent.rpartition(".")[0]
        if name:
            own[parent] -= flops
    result = {c: 0.0 for c in components(model)}
    for name, flops in own.items():
        result[component_of(name)] += flops / 1e9
    result["all"] = counter.get_total_flops() / 1e9
    return result


def model_summary(model: nn.Module, input_shape: Sequence[int]) -> str:
    """A small table: parameters (total/trainable) and forward GFLOPs per component; for a
    (B, C, D, H, W) input (the 2d_mem network) also the GFLOPs per slice."""
    params = parameter_report(model)
    flops = flops_by_component(model, input_shape)
    lines = [f"{'component':<15}{'params':>12}{'trainable':>12}{'train %':>9}{'GFLOPs':>10}"]
    for comp in components(model) + ("all",):
        p = params[comp]
        lines.append(f"{comp:<15}{p['total']:>12,}{p['trainable']:>12,}"
                     f"{p['trainable_pct']:>8.2f}%{flops.get(comp, 0.0):>10.3f}")
    lines.append(f"(forward FLOPs for one input of shape {tuple(input_shape)}; 1 MAC = 2 FLOPs)")
    if len(input_shape) == 5:
        slices = input_shape[0] * input_shape[2]
        lines.append(f"per slice: {flops['all'] / slices:.3f} GFLOPs ({flops[MEMORY] / slices:.3f} "
                     f"of them in the memory) over {slices} slices")
    return "\n".join(lines)
