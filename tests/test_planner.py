"""SAM2 planning helpers: patch rounding and the measured memory estimate behind the batch size."""
import pytest

from nnsam2.training.run_settings import MissingCheckpointError, checkpoint_for_size, resolve
from nnsam2.experiment_planning.training_footprint import estimate_training_memory
from nnsam2.experiment_planning.planner import round_patch


def test_patch_rounded_up_to_multiples_of_32():
    assert round_patch([56, 40]) == [64, 64]
    assert round_patch([320, 256]) == [320, 256]
    assert round_patch([129, 200]) == [160, 224]


def test_memory_estimate_grows_with_patch():
    small = estimate_training_memory("toy", 1, 3, (64, 64))
    large = estimate_training_memory("toy", 1, 3, (512, 384))
    assert 0 < small["per_sample_bytes"] < large["per_sample_bytes"]
    assert large["reference_patch"][0] * large["reference_patch"][1] <= 256 * 256
    assert small["fixed_bytes"] == large["fixed_bytes"] > 0


def test_checkpoint_policy(tmp_path, monkeypatch):
    monkeypatch.delenv("nnSAM2_checkpoint_dir", raising=False)
    with pytest.raises(MissingCheckpointError, match="sam2.1_hiera_small.pt.*--random-init"):
        resolve("small")
    monkeypatch.setenv("nnSAM2_checkpoint_dir", str(tmp_path))
    with pytest.raises(MissingCheckpointError, match="holds none of"):
        checkpoint_for_size("tiny")
    (tmp_path / "sam2_hiera_tiny.pt").write_bytes(b"")
    assert checkpoint_for_size("tiny") == str(tmp_path / "sam2_hiera_tiny.pt")
    assert resolve("tiny").checkpoint == str(tmp_path / "sam2_hiera_tiny.pt")
    monkeypatch.delenv("nnSAM2_checkpoint_dir")
    assert resolve("tiny", random_init=True).mode == "random"
    with pytest.raises(MissingCheckpointError, match="does not exist"):
        resolve("tiny", checkpoint=str(tmp_path / "missing.pt"))
