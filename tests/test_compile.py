"""``nnUNet_compile=t`` (opt-in): every variant compiles as one graph (``fullgraph=True`` fails on
any graph break) and computes what the eager network computes. ``aot_eager`` traces exactly as
inductor does, without its C++ compile time."""
import pytest
import torch

from nnsam2.network import AdapterCfg, build_memory_network, build_network

pytestmark = pytest.mark.usefixtures("one_thread")


def compiled(net):
    return torch.compile(net, backend="aot_eager", fullgraph=True)


@pytest.mark.parametrize("kind", ["none", "hp", "lw", "lora", "2d_mem"])
def test_prediction_compiles_without_graph_breaks(kind):
    torch.manual_seed(0)
    if kind == "2d_mem":
        net, x = build_memory_network(1, 3, size="toy"), torch.randn(1, 1, 3, 64, 64)
        net.open_gate()  # the memory path in the graph too
    else:
        net, x = build_network(1, 3, size="toy", adapter=AdapterCfg(kind=kind)), \
            torch.randn(2, 1, 64, 96)
    net.prepare_for_inference()
    with torch.no_grad():
        torch.testing.assert_close(compiled(net)(x), net(x), rtol=1e-5, atol=1e-6)


def test_training_step_compiles_with_equal_gradients():
    torch.manual_seed(0)
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="hp")).train()
    x = torch.randn(2, 1, 64, 64)
    compiled(net)(x).square().mean().backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    net.zero_grad()
    net(x).square().mean().backward()
    assert grads and all(torch.allclose(grads[n], p.grad, rtol=1e-4, atol=1e-7)
                         for n, p in net.named_parameters() if p.grad is not None)
