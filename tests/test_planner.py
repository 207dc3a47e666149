"""SAM2 planning helpers: patch rounding, the measured memory estimate behind the batch size and
what the planner does when the GPU memory target is too small for it."""
import pytest

from nnsam2.training.run_settings import MissingCheckpointError, checkpoint_for_size, resolve
from nnsam2.experiment_planning.mem_configuration import plan_memory_configuration
from nnsam2.experiment_planning.training_footprint import ADVICE, estimate_training_memory, \
    plan_batch_size
from nnsam2.experiment_planning.planner import round_patch
from nnsam2.utils.nnunet_env import UsageError


def test_patch_rounded_up_to_multiples_of_32():
    assert round_patch([56, 40]) == [64, 64]
    assert round_patch([320, 256]) == [320, 256]
    assert round_patch([129, 200]) == [160, 224]


def test_memory_estimate_grows_with_patch(one_thread):
    small = estimate_training_memory("toy", 1, 3, (64, 64))
    large = estimate_training_memory("toy", 1, 3, (512, 384))
    assert 0 < small["per_sample_bytes"] < large["per_sample_bytes"]
    assert large["reference_patch"][0] * large["reference_patch"][1] <= 256 * 256
    assert small["fixed_bytes"] == large["fixed_bytes"] > 0


def test_batch_size_when_the_target_is_small():
    mem = dict(fixed_bytes=1e9, per_sample_bytes=2e9)
    assert plan_batch_size(mem, 8, cap=100, what="2d") == (3, None)
    assert plan_batch_size(mem, 8, cap=1, what="2d") == (2, None)  # nnU-Net's minimum
    # one sample fits, two do not: batch 2 all the same (the target may be another GPU's), said
    batch, warning = plan_batch_size(mem, 4, cap=100, what="SAM2 large, 2d patch [1024, 1024]")
    assert batch == 2
    assert warning == ("SAM2 large, 2d patch [1024, 1024]: batch 2 needs about 5 GB of GPU "
                       "memory (1 GB fixed + 2 GB per sample), more than the 4 GB target; "
                       "batch 2 (nnU-Net's minimum) planned anyway, training may run out of GPU "
                       f"memory: {ADVICE}")
    with pytest.raises(UsageError, match=r"^2d: one sample needs about 3 GB .* more than the "
                                         r"2.5 GB target; use a smaller --sam2-size, a smaller "
                                         r"--patch-size or a larger -gpu_memory_target$"):
        plan_batch_size(mem, 2.5, cap=100, what="2d")
    assert plan_batch_size(mem, 2.5, cap=100, what="2d_mem", refuse=False)[0] == 2


def test_2d_mem_that_does_not_fit_is_planned_with_a_warning(one_thread):
    base = {"patch_size": [64, 64], "sam2": {"size": "toy", "memory_warning": "about 2d"}}
    plans = {"configurations": {"2d": base}, "original_median_shape_after_transp": [12, 64, 64],
             "original_median_spacing_after_transp": [25.0, 1.0, 1.0]}  # 3 slices
    dataset_json = {"channel_names": {"0": "MR"}, "labels": {"background": 0, "a": 1},
                    "numTraining": 100}
    fits = plan_memory_configuration(plans, dataset_json, "toy", gpu_memory_target_gb=8)
    assert "memory_warning" not in fits["sam2"]  # 2d's warning is 2d's
    tight = plan_memory_configuration(plans, dataset_json, "toy", gpu_memory_target_gb=0.001)
    assert tight["patch_size"] == [3, 64, 64] and tight["batch_size"] == 2
    assert tight["sam2"]["memory_warning"].startswith("SAM2 toy, 2d_mem patch [3, 64, 64]: batch 2")


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
