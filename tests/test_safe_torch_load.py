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


def _write(tmp_path, kind, marker):
    path = tmp_path / f"{kind}.pth"
    evil = {"network_weights": {"w": torch.zeros(3)}, "x": WritesAFile(str(marker))}
    if kind == "zip":
        torch.save(evil, path, pickle_module=pickle)
    elif kind == "legacy":  # torch's pre-1.6 format: pickles followed by raw tensor bytes
        torch.save(evil, path, _use_new_zipfile_serialization=False)
    elif kind == "plain":  # pickle.dump, protocol 5: torch warns about the protocol
        path.write_bytes(pickle.dumps(evil, protocol=5))
    return path


@pytest.mark.parametrize("kind", ["zip", "legacy", "plain"])
def test_refusal_names_the_code_in_one_line_in_every_format(tmp_path, kind, monkeypatch, recwarn):
    monkeypatch.delenv(ENV_ALLOW_PICKLE, raising=False)
    marker = tmp_path / "pwned"
    path = _write(tmp_path, kind, marker)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_nnunet_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"refused to load checkpoint {path}: it holds ")
    assert ("builtins.open" in message or "io.open" in message) and "\n" not in message
    assert "torch._utils" not in message and "Weights only" not in message
    assert not marker.exists() and not [w for w in recwarn if "pickle" in str(w.message)]


def test_wrong_files_are_named_for_what_they_are(tmp_path):
    empty, folder, noise = tmp_path / "empty.pth", tmp_path / "folder.pth", tmp_path / "noise.pth"
    empty.write_bytes(b"")
    folder.mkdir()
    noise.write_bytes(bytes(range(256)) * 8)
    for path, says in ((empty, "is empty (0 bytes)"), (folder, "is a folder, not a checkpoint"),
                       (noise, "cannot be read (not a PyTorch file)")):
        with pytest.raises(CheckpointError) as info:
            load_nnunet_checkpoint(path)
        assert str(info.value).startswith(f"checkpoint {path} {says}")
        assert not isinstance(info.value, UnsafeCheckpointError)
