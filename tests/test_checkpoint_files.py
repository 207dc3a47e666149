"""Checkpoint files (``nnsam2/training/checkpoint_files.py``): an unreadable checkpoint falls back
to the newest readable one, an interrupted write keeps the old file."""
import pytest
import torch

from nnsam2.network import AdapterCfg, build_network
from nnsam2.network.sam2_weights import CheckpointError
from nnsam2.training import checkpoint_files
from tests.helpers.checkpoints import nnunet_like_checkpoint


def test_unreadable_checkpoint_falls_back_to_the_newest_readable(tmp_path, caplog):
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="hp"))
    fold = tmp_path / "model" / "fold_0"
    fold.mkdir(parents=True)
    for name, epoch in (("checkpoint_best.pth", 4), ("checkpoint_latest.pth", 6)):
        checkpoint = nnunet_like_checkpoint(net)
        checkpoint["current_epoch"] = epoch
        checkpoint_files.write(checkpoint, str(fold / name))
    (fold / "checkpoint_latest.pth").write_bytes(b"")  # e.g. killed by a non-atomic writer
    with pytest.raises(CheckpointError, match=r"checkpoint_latest.pth is empty \(0 bytes\)"):
        checkpoint_files.read(str(fold / "checkpoint_latest.pth"))
    checkpoint, used = checkpoint_files.read(str(fold / "checkpoint_latest.pth"), fallback=True)
    assert used.endswith("checkpoint_best.pth") and checkpoint["current_epoch"] == 4
    assert "continuing from" in caplog.text


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path):
    target = tmp_path / "checkpoint_latest.pth"
    checkpoint_files.write({"current_epoch": 1}, str(target))

    def dies_halfway(obj, path):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        checkpoint_files.write({"current_epoch": 2}, str(target), save=dies_halfway)
    assert torch.load(target, weights_only=True)["current_epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_latest.pth"]
