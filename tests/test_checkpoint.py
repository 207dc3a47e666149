"""Loading official-format SAM2 checkpoints that the tests write themselves (random weights)."""
import pytest
import torch

from nnsam2.network import AdapterCfg, CheckpointError, build_network, load_sam2_checkpoint
from nnsam2.network.sam2_weights import canonical_name


@pytest.mark.parametrize("kind", ["hp", "lora", "none"])
def test_trunk_and_decoder_equal_the_checkpoint(official_tiny, kind):
    path, state = official_tiny
    net = build_network(1, 6, size="tiny", adapter=AdapterCfg(kind=kind))
    report = load_sam2_checkpoint(net, path)
    ours = {canonical_name(k): v for k, v in net.state_dict().items()}
    for key, value in state.items():
        if key.startswith(("image_encoder.", "sam_mask_decoder.transformer.",
                           "sam_prompt_encoder.")) and key in ours:
            assert torch.equal(ours[key], value), key
    assert torch.equal(ours["no_mem_embed"], state["no_mem_embed"])
    # 6 classes: class k starts from the official mask token / hypernetwork MLP k mod 4
    tokens = ours["sam_mask_decoder.mask_tokens.weight"]
    assert torch.equal(tokens[5], state["sam_mask_decoder.mask_tokens.weight"][1])
    assert torch.equal(ours["sam_mask_decoder.output_hypernetworks_mlps.4.layers.0.weight"],
                       state["sam_mask_decoder.output_hypernetworks_mlps.0.layers.0.weight"])
    assert any(k.startswith("memory_attention.") for k in report.ignored)
    assert "sam_mask_decoder.iou_prediction_head.layers.0.weight" in report.ignored
    if kind == "none":
        assert not report.new
    if kind in ("none", "lora"):  # SAM2's own position encodings
        assert "image_encoder.trunk.pos_embed" in report.loaded
        assert not any("peg" in k or "image_pe" in k for k in report.new)
    else:
        assert "image_encoder.trunk.pos_embed" in report.ignored  # replaced by the PEG
        assert any("peg" in k for k in report.new)
    assert "tensors loaded" in report.summary()


def test_checkpoint_of_another_size_is_refused(official_tiny, tmp_path):
    path, _ = official_tiny
    small = build_network(1, 3, size="small", adapter=AdapterCfg(kind="hp"))
    with pytest.raises(CheckpointError, match="another .*SAM2 size"):
        load_sam2_checkpoint(small, path)
    toy = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="hp"))
    with pytest.raises(CheckpointError, match=r"sam2\.1_hiera_tiny\.pt.*shape"):
        load_sam2_checkpoint(toy, path)


def test_bad_files_name_the_file(official_tiny, tmp_path):
    net = build_network(1, 3, size="tiny", adapter=AdapterCfg(kind="hp"))
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="nope.pt.*does not exist"):
        load_sam2_checkpoint(net, missing)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(official_tiny[0].read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="truncated.pt.*cannot be read"):
        load_sam2_checkpoint(net, truncated)
    other = tmp_path / "resnet.pt"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match="resnet.pt.*not a SAM2 checkpoint"):
        load_sam2_checkpoint(net, other)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_sam2_checkpoint(net, text)
