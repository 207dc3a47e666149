"""The network's precision (``bf16_autocast`` in ``nnsam2/network/sam2_net.py``): bf16 under any
autocast, the caller's precision without."""
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
