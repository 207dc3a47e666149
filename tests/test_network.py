"""The adapted SAM2 network on CPU: shapes, identities at initialisation, fusion, gradients."""
import pytest
import torch
import torch.nn.functional as F

from nnsam2.network import SIZES, AdapterCfg, build_network
from nnsam2.network.sam2_weights import canonical_name
from nnsam2.network.configs import resolve
from nnsam2.network.lora import LoRALinear
from nnsam2.network.lw_adapter import RepAdapter, RepConv3x3
from nnsam2.network.summary import flops_by_component, model_summary, parameter_report

KINDS = ("hp", "lw", "lora", "none")


def net_of(kind, size="toy", channels=1, classes=3, **kw):
    torch.manual_seed(0)
    return build_network(channels, classes, size=size, adapter=AdapterCfg(kind=kind, **kw))


def perturb_zero_inits(net):
    """Give zero-initialised adapter outputs and LoRA-B random values (as after training)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".adapter.up." in name or name.endswith("lora_B"):
                p.normal_(0, 0.05)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("hw", [(64, 64), (256, 192), (96, 160)])
def test_output_shape_any_multiple_of_32(kind, hw):
    net = net_of(kind).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, *hw))
    assert out.shape == (2, 3, *hw)


@pytest.mark.parametrize("channels,classes", [(1, 2), (2, 5), (3, 4), (4, 14)])
def test_channels_and_classes(channels, classes):
    net = net_of("hp", channels=channels, classes=classes).eval()
    with torch.no_grad():
        assert net(torch.randn(1, channels, 64, 96)).shape == (1, classes, 64, 96)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_official_sizes_build_and_run(size):
    net = net_of("hp", size=size, channels=2, classes=4).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 2, 64, 64)).shape == (1, 4, 64, 64)
    # Hiera parameter counts of the official sizes (DESIGN.md: T 26.85M, S 33.95M), which
    # include the absolute position embeddings that the PEG replaces.
    cfg = SIZES[size]
    pos = cfg.embed_dim * (cfg.window_pos_embed_bkg_spatial_size[0] ** 2 + cfg.window_spec[0] ** 2)
    trunk = parameter_report(net)["trunk"]["total"] + pos
    assert abs(trunk / 1e6 - {"tiny": 26.85, "small": 33.95}[size]) < 0.006


def test_large_sizes_build():
    for size, blocks in (("base_plus", 24), ("large", 48)):
        net = build_network(1, 2, size=size, adapter=AdapterCfg(kind="lw"))
        assert len(net.image_encoder.trunk.inner.blocks) == blocks


@pytest.mark.parametrize("hw", [(100, 64), (64, 48), (0, 64)])
def test_size_not_multiple_of_32_is_a_clear_error(hw):
    net = net_of("hp").eval()
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.randn(1, 1, *hw))


@pytest.mark.parametrize("kind", ["hp", "lw", "lora"])
def test_zero_initialised_adapters_equal_the_none_model(kind):
    adapted = net_of(kind).eval()
    plain = net_of("none", pos_embed=resolve(AdapterCfg(kind=kind)).pos_embed).eval()
    # Same weights: match keys through their official (wrapper-free) names.
    plain_keys = {canonical_name(k): k for k in plain.state_dict()}
    shared = {plain_keys[canonical_name(k)]: v for k, v in adapted.state_dict().items()
              if canonical_name(k) in plain_keys}
    assert set(shared) == set(plain.state_dict())
    plain.load_state_dict(shared)
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        a, b = adapted(x), plain(x)
    if kind == "lora":  # "+ 0" changes the attention kernel's input layout: last-bit differences
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    else:
        assert torch.equal(a, b)


def _train_steps(net, steps=3):
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    net.train()
    for _ in range(steps):
        x, y = torch.randn(2, 1, 64, 64), torch.randint(0, 3, (2, 64, 64))
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()


def test_lw_reparameterisation_is_exact_and_final():
    net = net_of("lw")
    perturb_zero_inits(net)
    _train_steps(net)
    net.eval()
    x = torch.randn(2, 1, 96, 64)
    with torch.no_grad():
        before = net(x)
        assert net.reparameterize() == len(net.image_encoder.trunk.inner.blocks)
        assert net.reparameterize() == 0  # second call is harmless
        after = net(x)
    assert (before - after).abs().max().item() <= 1e-4
    assert all(m.is_fused for m in net.modules() if isinstance(m, RepConv3x3))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    with pytest.raises(RuntimeError, match="re-parameterised"):
        net.train()


def test_lw_fused_adapter_matches_its_training_form():
    adapter = RepAdapter(32, bottleneck_ratio=0.25).eval()
    torch.nn.init.normal_(adapter.up.weight)
    torch.nn.init.normal_(adapter.up.bias)
    x = torch.randn(2, 8, 6, 32)
    with torch.no_grad():
        branch, residual = adapter(x), adapter.add_to(x)
        adapter.reparameterize()
        assert adapter.is_fused and not hasattr(adapter, "up")
        assert torch.allclose(adapter(x), branch, atol=1e-5)
        assert torch.allclose(adapter.add_to(x), residual, atol=1e-5)
    assert torch.allclose(residual, x + branch)
    with pytest.raises(RuntimeError, match="re-parameterised"):
        adapter.train()


@pytest.mark.parametrize("kind, ratio, divisor", [("hp", None, 4), ("lw", None, 8), ("lw", 0.25, 4)])
def test_adapter_bottleneck_defaults_per_kind(kind, ratio, divisor):
    net = build_network(1, 2, size="toy", adapter=AdapterCfg(kind, bottleneck_ratio=ratio))
    last = net.image_encoder.trunk.inner.blocks[-1].adapter
    assert last.down.out_features == last.down.in_features // divisor
    assert net.config["adapter"]["bottleneck_ratio"] == (ratio or {"hp": 0.25, "lw": 0.125}[kind])


@pytest.mark.parametrize("ratio", [2.0, 0.0, -0.125])
def test_bad_bottleneck_ratio_is_refused(ratio):
    with pytest.raises(ValueError, match="bottleneck_ratio"):
        build_network(1, 2, size="toy", adapter=AdapterCfg("lw", bottleneck_ratio=ratio))


def test_lora_merge_is_exact():
    net = net_of("lora")
    perturb_zero_inits(net)
    net.eval()
    n_lora = sum(isinstance(m, LoRALinear) for m in net.modules())
    # every qkv + 4 linears in each of (2 layers x 3 + final) decoder attentions
    assert n_lora == len(net.image_encoder.trunk.inner.blocks) + (2 * 3 + 1) * 4
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        before = net(x)
        assert net.merge_lora() == n_lora
        after = net(x)
    assert (before - after).abs().max().item() <= 1e-4
    assert not any(isinstance(m, LoRALinear) for m in net.modules())


@pytest.mark.parametrize("kind", KINDS)
def test_only_trainable_parameters_get_gradients(kind):
    net = net_of(kind, channels=2)
    perturb_zero_inits(net)
    net.train()
    out = net(torch.randn(2, 2, 64, 64))
    F.cross_entropy(out, torch.randint(0, 3, (2, 64, 64))).backward()
    for name, p in net.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"
        else:
            assert p.grad is None, f"frozen {name} got a gradient"


def test_frozen_parts_and_report():
    net = net_of("hp", channels=2)
    report = net.trainable_parameter_report()
    assert report["trunk"]["trainable"] == 0 and report["neck"]["trainable"] == 0
    assert report["prompt_encoder"]["trainable"] == 0
    assert report["adapters"]["trainable_pct"] == 100.0 and report["peg"]["trainable"] > 0
    assert report["stem"]["trainable"] == 9  # 1x1 conv 2 -> 3 channels
    assert report["all"]["trainable"] == sum(
        p.numel() for p in net.parameters() if p.requires_grad)
    lora = net_of("lora").trainable_parameter_report()
    assert lora["decoder"]["trainable"] < lora["decoder"]["total"]  # only class heads train


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    net = net_of("hp")
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    y = (((yy - 32) ** 2 + (xx - 28) ** 2) < 200).long().unsqueeze(0).repeat(2, 1, 1)
    y[:, 40:50, 40:60] = 2
    x = (y.float() + 0.3 * torch.randn(2, 64, 64)).unsqueeze(1)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_summary_flops_add_up():
    net = net_of("hp")
    flops = flops_by_component(net, (1, 1, 64, 64))
    parts = sum(v for k, v in flops.items() if k != "all")
    assert flops["adapters"] > 0 and flops["trunk"] > 0
    assert abs(parts - flops["all"]) < 1e-6 * max(1.0, flops["all"]) + 1e-9
    assert "adapters" in model_summary(net, (1, 1, 64, 64))
