"""The HP adapter's deformable convolution against torchvision's, in fp32 and under bf16 autocast."""
import pytest
import torch
from torchvision.ops import deform_conv2d as reference_deform_conv2d

from experiments.deform_conv_candidates import candidates
from nnsam2.benchmark.measure import autocast_heavy_op_dtypes
from nnsam2.network import AdapterCfg, build_network
from nnsam2.network.hp_adapter import DeformableAdapter
from nnsam2.network.deform_conv import deform_conv2d, sample_positions
from nnsam2.network.summary import flops_by_component

MAX_OFFSET = 3.0  # pixels: on a 7x9 map many samples fall partly or wholly outside


def random_inputs(b=2, c_in=5, c_out=6, hw=(7, 9), k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c_in, *hw, generator=g)
    offset = (torch.rand(b, 2 * k * k, *hw, generator=g) * 2 - 1) * MAX_OFFSET
    mask = torch.rand(b, k * k, *hw, generator=g) * 0.98 + 0.01  # in (0, 1)
    weight = torch.randn(c_out, c_in, k, k, generator=g)
    bias = torch.randn(c_out, generator=g)
    return [t.requires_grad_() for t in (x, offset, mask, weight, bias)]


def test_random_offsets_reach_outside_the_border():
    x, offset, *_ = random_inputs()
    y, xs = sample_positions(offset, 3, padding=1)
    outside = (y < 0) | (y > x.shape[2] - 1) | (xs < 0) | (xs > x.shape[3] - 1)
    wholly = (y <= -1) | (y >= x.shape[2]) | (xs <= -1) | (xs >= x.shape[3])
    assert 0.2 < outside.float().mean() < 0.8 and wholly.any()


@pytest.mark.parametrize("name", [n for n in candidates() if n != "torchvision"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_forward_and_gradients_match_torchvision(name, channels_last):
    x, offset, mask, weight, bias = inputs = random_inputs()
    ref = reference_deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    grad_out = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, inputs, grad_out)
    x_in = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) if channels_last else x
    out = candidates()[name](x_in, offset, weight, bias, mask, 1)
    grads = torch.autograd.grad(out, inputs, grad_out)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    for label, got, want in zip(("input", "offset", "mask", "weight", "bias"), grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=lambda m: f"{label}: {m}")


def test_padding_zero_and_odd_kernel_match_torchvision():
    x, offset, mask, weight, bias = random_inputs(hw=(9, 11), k=5)
    offset, mask = offset[..., 2:-2, 2:-2], mask[..., 2:-2, 2:-2]  # (9, 11) -> (5, 7) outputs
    ref = reference_deform_conv2d(x, offset, weight, bias, padding=0, mask=mask)
    out = deform_conv2d(x, offset, weight, bias, mask, padding=0)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_bf16_under_cpu_autocast_is_bf16_and_close_to_fp32():
    torch.manual_seed(0)
    adapter = DeformableAdapter(96)  # its down-projection hands bf16 to the deformable conv
    with torch.no_grad():  # non-trivial offsets, mask and output
        adapter.mix.offset_mask.weight.normal_(std=0.05)
        adapter.up.weight.normal_(std=0.05)
    tokens = torch.randn(2, 16, 16, 96)
    want = adapter.hidden(tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = adapter.hidden(tokens)
        adapter(tokens).float().square().sum().backward()
    assert got.dtype == torch.bfloat16 and adapter.mix.weight.grad.dtype == torch.float32
    assert adapter.mix.offset_mask.weight.grad.abs().sum() > 0
    rel = (got.float() - want).norm() / want.norm()
    assert rel < 2e-2, rel
    ops = autocast_heavy_op_dtypes(adapter, tokens)["ops"]
    assert {"_embedding_bag_forward_only@bfloat16", "addmm@bfloat16"} <= set(ops), ops
    assert all(op.endswith("@bfloat16") for op in ops), ops  # no fp32 fallback


def test_adapter_impls_share_parameters_and_outputs():
    torch.manual_seed(0)
    fast = DeformableAdapter(96)
    reference = DeformableAdapter(96, deform_impl="torchvision")
    with torch.no_grad():
        fast.mix.offset_mask.weight.normal_(std=0.05)
        fast.up.weight.normal_(std=0.05)
    reference.load_state_dict(fast.state_dict())  # same names and shapes: checkpoints load
    tokens = torch.randn(2, 8, 8, 96)
    torch.testing.assert_close(fast(tokens), reference(tokens), rtol=1e-4, atol=1e-5)
    flops = [flops_by_component(m.mix, (1, 24, 8, 8))["all"] for m in (fast, reference)]
    assert flops[0] == pytest.approx(flops[1])  # matmul + sampling, same count as torchvision's


def test_unknown_impl_is_refused():
    with pytest.raises(ValueError, match="deform_impl"):
        build_network(1, 2, size="toy", adapter=AdapterCfg(kind="hp", deform_impl="cuda"))


def test_impl_is_chosen_per_device_at_each_call(monkeypatch):
    from nnsam2.network import deform_conv
    assert deform_conv.default_impl(torch.device("cpu")) == "embedding_bag"
    assert deform_conv.default_impl(torch.device("cuda", 0)) == "torchvision"
    assert AdapterCfg().deform_impl is None  # networks are built without knowing the device
    ran = []

    def spy(impl, function):
        def wrapped(*args, **kwargs):
            ran.append(impl)
            return function(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(deform_conv, "_torchvision", spy("torchvision", deform_conv._torchvision))
    monkeypatch.setattr(deform_conv, "sampled_columns",
                        spy("embedding_bag", deform_conv.sampled_columns))
    adapter = DeformableAdapter(24)
    tokens = torch.randn(1, 8, 8, 24)
    adapter(tokens)
    monkeypatch.setattr(deform_conv, "default_impl", lambda device: "torchvision")  # "on CUDA"
    adapter(tokens)
    adapter.mix.impl = "embedding_bag"  # an explicit choice wins over the device's
    adapter(tokens)
    assert ran == ["embedding_bag", "torchvision", "embedding_bag"]


def test_switching_impl_keeps_state_dict_and_outputs():
    """A model trained with one implementation predicts with the other (e.g. trained on a GPU,
    predicted on a CPU): same state dict, same outputs."""
    torch.manual_seed(0)
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="hp")).eval()
    with torch.no_grad():  # non-trivial offsets, masks and adapter outputs
        for name, p in net.named_parameters():
            if ".adapter." in name:
                p.normal_(std=0.05)
    x = torch.randn(2, 1, 64, 64)
    outputs = {}
    for impl in ("embedding_bag", "torchvision"):
        other = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="hp", deform_impl=impl))
        other.load_state_dict(net.state_dict())  # strict: the same keys and shapes
        with torch.no_grad():
            outputs[impl] = other.eval()(x)
    torch.testing.assert_close(outputs["embedding_bag"], outputs["torchvision"],
                               rtol=1e-4, atol=1e-4)
    assert outputs["embedding_bag"].abs().max() > 0
