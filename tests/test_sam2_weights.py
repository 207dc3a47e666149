"""The official SAM2 weights (``nnsam2/network/sam2_weights.py``) in an untrained model: what
step 0 computes."""
import torch

from nnsam2.network import AdapterCfg, build_network, load_sam2_checkpoint


def with_official_weights(kind, official, **kw):
    torch.manual_seed(0)
    net = build_network(1, 3, size="tiny", adapter=AdapterCfg(kind=kind, **kw))
    load_sam2_checkpoint(net, official)
    return net.eval()


class ZeroPE(torch.nn.Module):
    def forward(self, x):
        return torch.zeros_like(x[:1])


def test_step0_is_sam2_without_absolute_position_encodings(official_tiny):
    """Untrained PEG + adapter models compute SAM2 with its absolute trunk embedding and the
    decoder's position encoding removed; untrained LoRA computes SAM2 itself."""
    path, _ = official_tiny
    reference = with_official_weights("none", path)
    with torch.no_grad():
        x = torch.randn(1, 1, 96, 64)
        sam2 = reference(x)
        reference.image_encoder.trunk.inner.pos_embed.zero_()
        reference.image_encoder.trunk.inner.pos_embed_window.zero_()
        reference.image_pe = ZeroPE()
        no_position = reference(x)
        assert (sam2 - no_position).abs().max() > 1e-3  # the property is not trivial here
        for kind in ("hp", "lw"):
            torch.testing.assert_close(with_official_weights(kind, path)(x), no_position,
                                       rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(with_official_weights("lora", path)(x), sam2,
                                   rtol=1e-5, atol=1e-5)
