"""Batched sliding-window prediction equals nnU-Net's patch-at-a-time prediction."""
import sys
from types import SimpleNamespace

import pytest
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import nn

from nnsam2.cli import predict
from nnsam2.network import build_memory_network, build_network
from nnsam2.inference.batched_prediction import (ENV_MEMORY_GB, GB, BatchedPredictor,
                                              chunk_size, predictor_class_injected)
from nnsam2.utils.nnunet_env import UsageError
from nnsam2.training.trainers.method_trainers import SAM2DualAdapterTrainer

CLASSES = 3
TRAINER_MODULE = sys.modules[nnUNetTrainer.__module__]


pytestmark = pytest.mark.usefixtures("one_thread")


class CallRecorder(nn.Module):
    """The wrapped network, recording the batch size of every forward pass; with ``max_batch``,
    larger batches raise CUDA's out-of-memory error."""

    def __init__(self, net: nn.Module, max_batch: int = 0):
        super().__init__()
        self.net, self.max_batch, self.batch_sizes = net, max_batch, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.max_batch and len(x) > self.max_batch:
            raise torch.OutOfMemoryError("simulated")
        self.batch_sizes.append(len(x))
        return self.net(x)


def conv_net(dims: int) -> nn.Module:
    """A stand-in network (B, 1, *patch) -> (B, CLASSES, *patch); zero padding and random kernels
    make every mirror give a different output."""
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    torch.manual_seed(0)
    return nn.Sequential(conv(1, 4, 3, padding=1), nn.ReLU(),
                         conv(4, CLASSES, 3, padding=1)).eval()


def sam2_toy(build=build_network) -> nn.Module:
    torch.manual_seed(0)
    return build(1, CLASSES, size="toy").eval()


def make_predictor(cls, net, patch, mirroring, axes=None, **kwargs):
    predictor = cls(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                    perform_everything_on_device=False, device=torch.device("cpu"),
                    allow_tqdm=False, **kwargs)
    labels = SimpleNamespace(num_segmentation_heads=CLASSES)
    predictor.manual_initialization(net, SimpleNamespace(get_label_manager=lambda _: labels),
                                    SimpleNamespace(patch_size=list(patch)), None, {}, "test",
                                    axes or tuple(range(len(patch))))
    return predictor


def budget_gb(net, patch, images: float) -> float:
    """The budget that holds ``images`` images of ``patch`` (a fraction keeps floor() clear of
    rounding)."""
    predictor = make_predictor(BatchedPredictor, net, patch, False, prediction_memory_gb=0)
    per_image, _ = predictor.bytes_per_image(torch.zeros(1, 1, *patch))
    return images * per_image / GB


def assert_same_argmax(got: torch.Tensor, expected: torch.Tensor) -> None:
    """The same class wherever the reference has one: both accumulate in fp16 (nnU-Net's choice),
    where about 1% of voxels tie or nearly tie and one rounding step can flip the winner."""
    top2 = expected.topk(2, dim=0).values
    decided = top2[0] - top2[1] > 1e-3  # a few fp16 steps at these magnitudes
    assert decided.float().mean() > 0.9
    assert torch.equal(got.argmax(0)[decided], expected.argmax(0)[decided])


CASES = {  # name: (network, input (C, *spatial), patch, mirror axes); windows, passes of 3
    "2d_config_3d_volume": (sam2_toy, (1, 3, 32, 32), (32, 32), None),  # 3 slices, 1 pass
    "2d_image_several_windows": (sam2_toy, (1, 1, 48, 48), (32, 32), None),  # 4, 2 passes
    # a 3D patch configuration mirrored in-plane, as the 2d_mem trainer says: 8 windows, 3 passes
    "3d_patch_config": (lambda: conv_net(3), (1, 6, 40, 40), (4, 32, 32), (1, 2)),
    # the real 2d_mem network, mirrored in-plane: 2 windows, 1 pass
    "2d_mem_network": (lambda: sam2_toy(build_memory_network), (1, 4, 32, 32), (3, 32, 32),
                       (1, 2)),
}


@pytest.mark.parametrize("mirroring", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_batched_equals_patch_at_a_time(case, mirroring):
    build, shape, patch, axes = CASES[case]
    net = build()
    torch.manual_seed(1)
    image = torch.randn(shape)
    reference = make_predictor(nnUNetPredictor, net, patch, mirroring, axes)
    expected = reference.predict_sliding_window_return_logits(image).float()
    recorder = CallRecorder(net)
    mirrors = 2 ** len(axes or patch) if mirroring else 1
    batched = make_predictor(BatchedPredictor, recorder, patch, mirroring, axes,  # 3 windows
                             prediction_memory_gb=budget_gb(recorder, patch, 3.5 * mirrors))
    got = batched.predict_sliding_window_return_logits(image).float()
    windows = len(reference._internal_get_sliding_window_slicers(image.shape[1:]))
    assert recorder.batch_sizes == [min(3, windows - i) * mirrors for i in range(0, windows, 3)]
    assert got.shape == expected.shape == (CLASSES, *shape[1:])
    assert (got.softmax(0) - expected.softmax(0)).abs().max() <= 1e-4
    assert_same_argmax(got, expected)
    if mirroring:  # the tolerance tells a mirror left out
        plain = make_predictor(BatchedPredictor, net, patch, False, prediction_memory_gb=1)
        unmirrored = plain.predict_sliding_window_return_logits(image).float()
        assert (unmirrored.softmax(0) - expected.softmax(0)).abs().max() > 1e-3


@pytest.mark.parametrize("images, batch_sizes", [
    (0, [1] * 20),  # budget 0: nnU-Net's one image per pass
    (0.5, [1] * 20),  # too small for one image: still one
    (2.5, [2] * 10),  # less than one window's 4 mirrors: the mirrors split
    (8.5, [8, 8, 4]),  # two windows (5 slices) per pass
    (1000.5, [20]),  # everything at once
])
def test_budget_sets_images_per_forward_pass(images, batch_sizes):
    net, patch = conv_net(2), (32, 32)
    recorder = CallRecorder(net)
    predictor = make_predictor(BatchedPredictor, recorder, patch, True,
                               prediction_memory_gb=budget_gb(recorder, patch, images))
    predictor.predict_sliding_window_return_logits(torch.randn(1, 5, 32, 32))
    assert recorder.batch_sizes == batch_sizes


def test_chunk_sizes_are_few_and_fixed():
    """cudnn.benchmark tunes once per batch size: the rests of all cases use powers of two."""
    sizes = set()
    for total in range(1, 60):
        chunks, done = [], 0
        while done < total:
            chunks.append(chunk_size(total - done, 12))
            done += chunks[-1]
        assert sum(chunks) == total
        sizes.update(chunks)
    assert sizes == {12, 8, 4, 2, 1}
    net, patch = conv_net(2), (32, 32)
    recorder = CallRecorder(net)
    predictor = make_predictor(BatchedPredictor, recorder, patch, True,
                               prediction_memory_gb=budget_gb(recorder, patch, 12.5))
    assert not predictor.fixed_chunk_sizes  # CPU: one pass for the rest
    predictor.fixed_chunk_sizes = True  # as on CUDA
    predictor.predict_sliding_window_return_logits(torch.randn(1, 7, 32, 32))
    assert recorder.batch_sizes == [12, 12, 4]  # 7 windows x 4 mirrors, 3 windows per pass


def test_out_of_memory_halves_the_batch():
    net, patch = conv_net(2), (32, 32)
    image = torch.randn(1, 5, 32, 32)
    expected = make_predictor(nnUNetPredictor, net, patch, True) \
        .predict_sliding_window_return_logits(image).float()
    recorder = CallRecorder(net, max_batch=5)
    predictor = make_predictor(BatchedPredictor, recorder, patch, True, prediction_memory_gb=100)
    got = predictor.predict_sliding_window_return_logits(image).float()
    assert max(recorder.batch_sizes) <= 5 and sum(recorder.batch_sizes) == 20
    assert (got.softmax(0) - expected.softmax(0)).abs().max() <= 1e-4


def test_environment_variable_sets_the_budget(monkeypatch):
    monkeypatch.setenv(ENV_MEMORY_GB, "0.5")
    assert BatchedPredictor(device=torch.device("cpu")).prediction_memory_gb == 0.5
    assert BatchedPredictor(device=torch.device("cpu"),
                            prediction_memory_gb=2).prediction_memory_gb == 2
    monkeypatch.setenv(ENV_MEMORY_GB, "lots")
    with pytest.raises(ValueError, match=f"{ENV_MEMORY_GB} must be a number of GB >= 0"):
        BatchedPredictor(device=torch.device("cpu"))
    a = predict.parser().parse_args(["-i", "x", "-o", "y"])
    with pytest.raises(UsageError, match=ENV_MEMORY_GB):
        predict._memory_budget_gb(a)


@pytest.mark.parametrize("value", ["-1", "abc", "nan"])
def test_cli_refuses_a_bad_budget(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["-i", "x", "-o", "y", "-device", "cpu", "--prediction_memory_gb", value])
    assert exit_info.value.code != 0
    assert "--prediction_memory_gb: the budget must be a number of GB >= 0" in \
        capsys.readouterr().err
    a = predict.parser().parse_args(["-i", "x", "-o", "y", "--prediction_memory_gb", "1.5"])
    assert a.prediction_memory_gb == 1.5


def test_final_validation_uses_the_batched_predictor(monkeypatch):
    seen = []
    monkeypatch.setattr(nnUNetTrainer, "perform_actual_validation",
                        lambda self, save_probabilities=False: seen.append(
                            TRAINER_MODULE.nnUNetPredictor))
    trainer = object.__new__(SAM2DualAdapterTrainer)  # the method needs no initialised state
    trainer.perform_actual_validation()
    assert seen == [BatchedPredictor]
    assert TRAINER_MODULE.nnUNetPredictor is nnUNetPredictor  # restored
    with pytest.raises(KeyError), predictor_class_injected(TRAINER_MODULE):
        raise KeyError
    assert TRAINER_MODULE.nnUNetPredictor is nnUNetPredictor
