"""The ``2d_mem`` network: SAM2's memory over the slices of a patch (toy size except the
checkpoint test)."""
import pytest
import torch
from sam2.modeling.position_encoding import compute_axial_cis
from sam2.modeling.sam.transformer import RoPEAttention

from nnsam2.network import build_memory_network, build_network, load_sam2_checkpoint
from nnsam2.network import frozen_store
from nnsam2.network.sam2_weights import MEMORY_KEYS, CheckpointError
from nnsam2.network.summary import flops_by_component, model_summary

CLASSES = 3


def mem_net(seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return build_memory_network(1, CLASSES, size="toy", **kwargs).eval()


def patch(depth: int = 3, height: int = 64, width: int = 64, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, 1, depth, height, width, generator=torch.Generator().manual_seed(3))


def same_weights(target, source):
    target.load_state_dict(source.state_dict())
    return target


def rope_freqs(net):
    return [m.freqs_cis for m in net.memory_attention.modules() if isinstance(m, RoPEAttention)]


def test_shapes_non_square_rope_and_input_checks():
    net = mem_net()
    with torch.no_grad():
        square = net(patch(depth=2))
        out = net(patch(depth=3, width=96, batch=2))  # 4 x 6 tokens at stride 16
    assert out.shape == (2, CLASSES, 3, 64, 96) and torch.isfinite(out).all()
    assert square.shape == (1, CLASSES, 2, 64, 64)
    # sam2 alone would use w = h = sqrt(24) here: wrong positions (or a shape error)
    expected = compute_axial_cis(dim=net.memory_attention.d_model, end_x=6, end_y=4)
    assert len(rope_freqs(net)) == 2 * len(net.memory_attention.layers)
    for freqs in rope_freqs(net):
        torch.testing.assert_close(freqs, expected)
    with pytest.raises(ValueError, match="multiples of 32"):
        net(patch(height=64, width=80))
    with pytest.raises(ValueError, match=r"\(B, C, D, H, W\)"):
        net(torch.randn(1, 1, 64, 64))


def flat_twin(net, seed: int = 5):
    """The 2D network with ``net``'s 2D weights."""
    torch.manual_seed(seed)
    flat = build_network(1, CLASSES, size=net.config["size"]).eval()
    flat.load_state_dict({k: v for k, v in net.state_dict().items()
                          if k in flat.state_dict()})
    return flat


def two_d_as_batched(flat, x):
    """The 2D network on every slice, batched as the memory network batches its decoder (step t:
    slice t forward and slice D-1-t backward), so that the comparison can be bit for bit."""
    b, depth = x.shape[0], x.shape[2]
    return torch.stack([flat(torch.cat([x[:, :, t], x[:, :, depth - 1 - t]]))[:b]
                        for t in range(depth)], 2)


def test_closed_gate_is_the_2d_network_bit_for_bit():
    net = mem_net()
    assert torch.equal(net.gate(), torch.zeros_like(net.gate()))
    flat = flat_twin(net)
    x = patch(depth=4, batch=2, width=96)
    with torch.no_grad():
        out = net(x)
        assert torch.equal(out, two_d_as_batched(flat, x))
        per_slice = torch.stack([flat(x[:, :, d]) for d in range(4)], 2)
        for p in net.memory_attention.parameters():  # the memory contributes nothing at all
            p.add_(torch.randn_like(p))
        assert torch.equal(net(x), out)
    # batched another way, the 2D network itself differs only by float rounding
    torch.testing.assert_close(out, per_slice, rtol=1e-5, atol=1e-5)


def test_open_gate_is_sam2s_memory_path():
    net = mem_net(directions="forward")
    net.open_gate()
    assert torch.equal(net.gate(), torch.ones_like(net.gate()))
    width, mem_dim = net.no_mem_embed.shape[-1], net.maskmem_tpos_enc.shape[-1]
    pix, pos = torch.randn(2, 2, width, 2, 2).unbind(0)  # a 2 x 2 map
    bank = [(torch.randn(2, mem_dim, 2, 2), torch.randn(2, mem_dim, 2, 2))]
    with torch.no_grad():
        gated = net._condition(pix, pos, bank)
        net._set_rope_size(2, 2, pix.device)
        memory = bank[0][0].flatten(2).permute(2, 0, 1)
        memory_pos = bank[0][1].flatten(2).permute(2, 0, 1) + net.maskmem_tpos_enc[0]
        sam2 = net.memory_attention(curr=pix.flatten(2).permute(2, 0, 1),
                                    curr_pos=pos.flatten(2).permute(2, 0, 1), memory=memory,
                                    memory_pos=memory_pos).permute(1, 2, 0).reshape(2, width, 2, 2)
    assert torch.equal(gated, sam2)
    flat = flat_twin(net)
    x = patch(depth=3, batch=2)
    with torch.no_grad():
        out = net(x)
        per_slice = [flat(x[:, :, d]) for d in range(3)]
    assert torch.equal(out[:, :, 0], per_slice[0])  # the first slice has no memory yet
    for d in (1, 2):  # conditioned on the memories: not the 2D network's output
        assert (out[:, :, d] - per_slice[d]).abs().max() > 1e-3


def test_both_directions_are_symmetric_and_differ_from_forward():
    both = mem_net()
    both.open_gate()
    forward = same_weights(mem_net(seed=1, directions="forward"), both)
    x = patch(depth=3)
    with torch.no_grad():
        out = both(x)
        out_flipped = both(x.flip(2))
        out_forward = forward(x)
    torch.testing.assert_close(out_flipped, out.flip(2), rtol=1e-4, atol=1e-4)
    assert (out - out_forward).abs().max() > 1e-3


def test_official_checkpoint_loads_memory(official_tiny):
    path, official = official_tiny
    torch.manual_seed(0)
    net = build_memory_network(1, CLASSES, size="tiny")
    report = load_sam2_checkpoint(net, path)
    memory_official = [k for k in official if k.startswith(MEMORY_KEYS)]
    assert memory_official and set(memory_official) <= set(report.loaded)
    assert "no_mem_embed" in report.loaded
    assert not [k for k in report.new if k.startswith(MEMORY_KEYS)]
    state = net.state_dict()
    for key in memory_official:
        torch.testing.assert_close(state[key], official[key], rtol=0, atol=0)
    groups = report.ignored_groups()
    assert {"obj_ptr_proj", "mask_downsample", "no_obj_ptr", "obj_ptr_tpos_proj",
            "no_obj_embed_spatial"} <= set(groups)
    assert not any(g.startswith(("memory_", "maskmem")) for g in groups)
    assert "obj_ptr_proj" in report.summary()
    # a checkpoint without the memory cannot silently leave it random
    lacking = {k: v for k, v in official.items() if not k.startswith("memory_encoder.")}
    torch.save({"model": lacking}, path.parent / "no_memory.pt")
    with pytest.raises(CheckpointError, match="lacks"):
        load_sam2_checkpoint(net, path.parent / "no_memory.pt")
    # with SAM2's weights too, the closed gate makes it the 2D network of the same weights
    net.eval()
    flat = flat_twin(net)
    load_sam2_checkpoint(flat, path)
    x = patch(depth=2, batch=2)
    with torch.no_grad():
        assert torch.equal(net(x), two_d_as_batched(flat, x))


def test_memory_path_trains_and_the_closed_gate_opens_from_the_first_step():
    net = mem_net().train()
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    memory = {n for n in trainable if n.startswith(MEMORY_KEYS) or n == "memory_gate"}
    assert "memory_gate" in memory and any(n.startswith("memory_attention.") for n in memory)
    assert "no_mem_pos_enc" not in dict(net.named_parameters())  # unused: a buffer, no DDP error
    assert any(".adapter." in n for n in trainable) and any(".peg." in n for n in trainable)
    assert any(n.startswith("sam_mask_decoder.mask_tokens") for n in trainable)
    x = patch(depth=3)
    target = torch.randint(0, CLASSES, (1, 3, 64, 64))
    torch.nn.functional.cross_entropy(net(x), target).backward()
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert set(grads) == trainable
    assert grads["memory_gate"].abs().sum() > 0  # the gate learns to open ...
    attention = [g for n, g in grads.items() if n.startswith("memory_attention.")]
    assert all(g.abs().sum() == 0 for g in attention)  # ... before the memory can learn
    net.zero_grad()
    net.open_gate()
    torch.nn.functional.cross_entropy(net(x), target).backward()
    assert all(p.grad.abs().sum() > 0 for n, p in net.named_parameters()
               if n.startswith("memory_attention.layers.0.cross_attn_image.q_proj"))


def test_lean_state_dict_round_trip(tmp_path):
    net = mem_net()
    net.open_gate()
    lean = frozen_store.split_state_dict(net, str(tmp_path))
    assert frozen_store.is_lean(lean)
    assert "memory_gate" in lean and any(k.startswith("memory_attention.") for k in lean)
    assert not [k for k in lean if k.startswith("image_encoder.trunk.blocks.0.attn.")]
    frozen_store._cache.clear()
    other = mem_net(seed=7)
    other.load_state_dict(frozen_store.expand(lean, [str(tmp_path)]))
    x = patch(depth=2)
    with torch.no_grad():
        torch.testing.assert_close(other(x), net(x))


def test_bf16_autocast_and_summary():
    net = mem_net()
    x = patch(depth=2, height=32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    assert out.shape == (1, CLASSES, 2, 32, 64) and torch.isfinite(out.float()).all()
    assert out.dtype == torch.bfloat16
    flops = flops_by_component(net, (1, 1, 2, 32, 64))
    assert flops["memory"] > 0
    table = model_summary(net, (1, 1, 2, 32, 64))
    assert "memory" in table and "per slice" in table


def test_benchmark_reports_the_memory_variant_per_slice():
    from nnsam2.benchmark.variants import ALL_VARIANTS, MEM_SLICES, input_shape
    from nnsam2.benchmark.worker import _per_slice

    assert "mem" in ALL_VARIANTS and input_shape("mem", 1, (64, 96)) == (1, MEM_SLICES, 64, 96)
    stats = dict(median_ms=80.0, q1_ms=40.0, q3_ms=160.0, min_ms=8.0, max_ms=800.0, n=3)
    row = dict(latency_bs1=stats, latency_bsN=dict(stats), train_step=None, gflops=16.0,
               gflops_by_component={"memory": 8.0, "all": 16.0})
    row = _per_slice(row, 8)
    assert row["latency_bs1"]["median_ms"] == 10.0 and row["latency_bs1"]["n"] == 3
    assert row["gflops"] == 2.0 and row["gflops_by_component"]["memory"] == 1.0
    assert row["per_input"]["latency_bsN"]["median_ms"] == 80.0 and row["train_step"] is None


def test_building_does_not_touch_cuda(monkeypatch):
    """sam2's RoPEAttention moves its frequencies to "cuda" when a GPU exists: a -device cpu run
    or the planner would open a CUDA context (here, without a GPU, that raises)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    net = mem_net()
    assert all(f.device.type == "cpu" for f in rope_freqs(net))
    with torch.no_grad():
        assert net(patch(depth=2)).shape == (1, CLASSES, 2, 64, 64)
