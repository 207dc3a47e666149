"""Safe checkpoint loading (``nnsam2/utils/safe_torch_load.py``): nnU-Net checkpoints load,
malicious pickles are refused unless explicitly allowed, unreadable files name the file."""
import pickle

import pytest
import torch

from nnsam2.network import AdapterCfg, build_network
from nnsam2.network.sam2_weights import CheckpointError
from nnsam2.utils.safe_torch_load import (ENV_ALLOW_PICKLE, UnsafeCheckpointError,
                                     load_nnunet_checkpoint)
from tests.helpers.checkpoints import WritesAFile, nnunet_like_checkpoint


def test_safe_loading(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_ALLOW_PICKLE, raising=False)
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="lw"))
    good = tmp_path / "good.pth"
    torch.save(nnunet_like_checkpoint(net), good)
    assert load_nnunet_checkpoint(good)["logging"]["mean_fg_dice"][1] == 0.2

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    checkpoint = nnunet_like_checkpoint(net)
    checkpoint["_best_ema"] = WritesAFile(str(marker))
    torch.save(checkpoint, evil, pickle_module=pickle)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pth.*open.*--allow-pickle"):
        load_nnunet_checkpoint(evil)
    assert not marker.exists()
    monkeypatch.setenv(ENV_ALLOW_PICKLE, "1")  # the explicit opt-in for trusted files
    load_nnunet_checkpoint(evil)
    assert marker.exists()

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:5000])
    monkeypatch.delenv(ENV_ALLOW_PICKLE)
    with pytest.raises(CheckpointError, match=r"truncated\.pth cannot be read"):
        load_nnunet_checkpoint(truncated)
