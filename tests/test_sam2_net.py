"""The network's precision (``SAM2SegNet.autocast_context``, ``nnsam2/network/precision.py``):
its own autocast dtype under any autocast (bf16 by default on the CPU), the caller's precision
without."""
import pytest
import torch

from nnsam2.network import AdapterCfg, build_network


@pytest.mark.parametrize("kind", ["hp", "lw", "lora", "none"])
def test_forward_runs_bf16_under_any_autocast(kind):
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind=kind)).eval()
    seen = []
    for module in net.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            module.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):  # nnU-Net-style fp16
        out = net(x)
    assert set(seen) == {torch.bfloat16} and out.dtype == torch.bfloat16
    seen.clear()
    with torch.no_grad():
        assert net(x).dtype == torch.float32 and set(seen) == {torch.float32}


def linear_and_conv_dtypes(net) -> list:
    seen = []
    for module in net.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            module.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    return seen


@pytest.mark.parametrize("policy", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("caller", [torch.float16, torch.bfloat16])
def test_forward_runs_in_the_policy_dtype_whoever_opened_autocast(policy, caller):
    """The trainer and the predictor set ``autocast_dtype`` from the device's policy; nnU-Net's
    validation and predictor open their own autocast (fp16 on CUDA) around the forward."""
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="hp")).eval()
    net.autocast_dtype = policy
    seen = linear_and_conv_dtypes(net)
    with torch.no_grad(), torch.autocast("cpu", dtype=caller):
        out = net(torch.randn(1, 1, 64, 64))
        assert torch.get_autocast_dtype("cpu") == caller  # the switch ends with the forward
    assert set(seen) == {policy} and out.dtype == policy
