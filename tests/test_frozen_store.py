"""The frozen-weight store (``nnsam2/network/frozen_store.py``): lean state dicts expand to the
full one; a damaged or missing store is a clear error."""
import pytest
import torch

from nnsam2.network import AdapterCfg, build_network, frozen_store


def test_frozen_store_round_trip_and_damage(tmp_path):
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="lw"))
    lean = frozen_store.split_state_dict(net, str(tmp_path))
    reference = lean[frozen_store.REFERENCE_KEY]
    store = tmp_path / reference["file"]
    assert store.is_file() and not any(k.startswith("image_encoder.trunk.inner.blocks.0.inner.")
                                       for k in lean)
    assert any(".adapter." in k for k in lean)  # trainable and BN running statistics stay
    frozen_store._cache.clear()
    full = frozen_store.expand(lean, [str(tmp_path)])
    assert set(full) == set(net.state_dict())
    assert all(torch.equal(full[k], v) for k, v in net.state_dict().items())

    payload = torch.load(store, weights_only=True)
    key = next(iter(payload["tensors"]))
    payload["tensors"][key] = payload["tensors"][key] + 1
    torch.save(payload, store)
    frozen_store._cache.clear()
    with pytest.raises(frozen_store.FrozenStoreError, match="SHA-256"):
        frozen_store.expand(lean, [str(tmp_path)])
    store.unlink()
    with pytest.raises(frozen_store.FrozenStoreError, match="copy the whole model folder"):
        frozen_store.expand(lean, [str(tmp_path / "elsewhere")])
