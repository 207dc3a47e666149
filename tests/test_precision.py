"""The precision policy (``nnsam2/network/precision.py``): decided per device, applied by the
trainer (GradScaler, ``fold_X/precision.json``, log) and the predictor; the fp16 + GradScaler
training path, run on the CPU (CPU autocast has fp16 kernels)."""
import contextlib
import json
import math

import pytest
import torch
import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as nnunet_trainer_module

from nnsam2.network import build_network
from nnsam2.network.precision import BF16, FP16, FP32, make_grad_scaler, network_autocast_dtype, \
    policy_for
from nnsam2.training.precision_record import RECORD_FILE
from nnsam2.training.trainers import nnsam2_trainer
from nnsam2.training.trainers.method_trainers import SAM2DualAdapterTrainer, \
    SAM2DualAdapterTrainer_LW

GPUS = {"T4": ("Tesla T4", (7, 5)), "V100": ("Tesla V100-SXM2-16GB", (7, 0)),
        "A100": ("NVIDIA A100-SXM4-40GB", (8, 0)), "H100": ("NVIDIA H100 80GB HBM3", (9, 0))}
DATASET = {"labels": {"background": 0, "organ": 1}, "channel_names": {"0": "MRI"},
           "file_ending": ".nii.gz", "numTraining": 2}


def fake_gpu(monkeypatch, gpu: str) -> None:
    """torch.cuda answers as the named GPU would (this machine may have none)."""
    name, capability = GPUS[gpu]

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return capability >= (8, 0) or including_emulation  # emulated bf16 "works" everywhere

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())


def plans() -> dict:
    architecture = {"network_class_name": "nnsam2.network.sam2_net.SAM2SegNet",
                    "arch_kwargs": {}, "_kw_requires_import": []}
    config = {"data_identifier": "nnSAM2Plans_2d", "patch_size": [64, 64], "batch_dice": True,
              "sam2": {"size": "toy"}, "architecture": architecture}
    return {"dataset_name": "Dataset999_Precision", "plans_name": "nnSAM2Plans",
            "continue_training": False, "configurations": {"2d": config}}


def make_trainer(trainer_class, device: str):
    trainer = trainer_class(plans(), "2d", 0, DATASET, device=torch.device(device))
    trainer.network = build_network(1, 2, size="toy", adapter=trainer.adapter_cfg())
    return trainer


@pytest.mark.parametrize("gpu, want", [("T4", FP16), ("V100", FP16), ("A100", BF16),
                                       ("H100", BF16)])
def test_policy_per_gpu(monkeypatch, gpu, want):
    fake_gpu(monkeypatch, gpu)
    device = torch.device("cuda", 0)
    assert policy_for(device) == want
    assert network_autocast_dtype(device) == want.autocast_dtype  # the network's own default
    scaler = make_grad_scaler(want, device)
    assert (scaler is not None) == (want == FP16)


def test_cpu_policy_is_fp32_without_scaler():
    cpu = torch.device("cpu")
    assert policy_for(cpu) == FP32 and make_grad_scaler(FP32, cpu) is None
    assert network_autocast_dtype(cpu) == torch.bfloat16  # only if a caller opens CPU autocast


@pytest.mark.parametrize("trainer_class, device, gpu, want, deform", [
    (SAM2DualAdapterTrainer, "cpu", None, FP32, "embedding_bag"),
    (SAM2DualAdapterTrainer, "cuda", "T4", FP16, "torchvision"),
    (SAM2DualAdapterTrainer, "cuda", "A100", BF16, "torchvision"),
    (SAM2DualAdapterTrainer_LW, "cuda", "T4", FP16, None),  # no deformable convolution
])
def test_trainer_decides_records_and_logs_its_precision(nnunet_env, monkeypatch, trainer_class,
                                                        device, gpu, want, deform):
    if gpu:
        fake_gpu(monkeypatch, gpu)
    trainer = make_trainer(trainer_class, device)
    assert trainer.precision == want
    assert isinstance(trainer.grad_scaler, torch.amp.GradScaler) == want.grad_scaler
    trainer._apply_precision()
    assert trainer.network.autocast_dtype == want.autocast_dtype
    with open(f"{trainer.output_folder}/{RECORD_FILE}") as f:
        record = json.load(f)
    assert record["precision"] == want.name and record["grad_scaler"] == want.grad_scaler
    assert record["deform_impl"] == deform and record["torch"] == torch.__version__
    if gpu:
        assert (record["device_name"], record["compute_capability"]) == (
            GPUS[gpu][0], "{}.{}".format(*GPUS[gpu][1]))
    with open(trainer.log_file) as f:
        assert f"precision: {'fp32' if want == FP32 else want.name + ' autocast'}" in f.read()


def test_trainer_deform_impl_setting_overrides_the_device_choice(nnunet_env, monkeypatch):
    class Explicit(SAM2DualAdapterTrainer):
        sam2_deform_impl = "embedding_bag"

    fake_gpu(monkeypatch, "A100")
    trainer = make_trainer(Explicit, "cuda")
    assert trainer.deform_impl_in_use() == "embedding_bag"
    assert {m.impl for m in trainer.network.modules() if hasattr(m, "impl")} == {"embedding_bag"}


@pytest.fixture
def fp16_trainer(nnunet_env, monkeypatch):
    """An HP trainer on the CPU whose policy is fp16 + GradScaler, with nnU-Net's train_step
    opening a bf16 autocast around forward and loss (as it opens its default on CUDA): the
    network must switch it to the policy's fp16."""
    monkeypatch.setattr(nnsam2_trainer, "policy_for", lambda device: FP16)
    monkeypatch.setattr(nnunet_trainer_module, "dummy_context",
                        lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    torch.manual_seed(0)
    trainer = make_trainer(SAM2DualAdapterTrainer, "cpu")
    trainer._apply_precision()
    trainer.loss = trainer._build_loss()
    trainer.optimizer = torch.optim.AdamW(
        [p for p in trainer.network.parameters() if p.requires_grad], lr=1e-3)
    g = torch.Generator().manual_seed(0)
    batch = {"data": torch.randn(2, 1, 64, 64, generator=g),
             "target": torch.randint(0, 2, (2, 1, 64, 64), generator=g).float()}
    return trainer, batch


def trainable(net) -> dict:
    return {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}


def test_fp16_step_with_grad_scaler_trains(fp16_trainer):
    trainer, batch = fp16_trainer
    assert isinstance(trainer.grad_scaler, torch.amp.GradScaler)
    dtypes = set()
    for module in trainer.network.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            module.register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
    before, scale = trainable(trainer.network), trainer.grad_scaler.get_scale()
    loss = float(trainer.train_step(batch)["loss"])
    after = trainable(trainer.network)
    assert math.isfinite(loss) and dtypes == {torch.float16}
    assert trainer.grad_scaler.get_scale() == scale  # no overflow: the step was taken
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert any(".adapter.up." in n for n in changed)  # zero-initialised: moved by this step
    assert any("output_hypernetworks_mlps" in n for n in changed)


def test_fp16_step_with_an_inf_gradient_is_skipped(fp16_trainer):
    trainer, batch = fp16_trainer
    tokens = trainer.network.sam_mask_decoder.mask_tokens.weight
    tokens.register_hook(lambda grad: torch.full_like(grad, math.inf))  # an fp16 overflow
    before, scale = trainable(trainer.network), trainer.grad_scaler.get_scale()
    trainer.train_step(batch)
    after = trainable(trainer.network)
    assert all(torch.equal(before[n], after[n]) for n in before)  # skipped: nothing moved
    assert trainer.grad_scaler.get_scale() == scale * 0.5  # GradScaler's backoff


@pytest.mark.parametrize("gpu, want", [(None, None), ("T4", torch.float16),
                                       ("A100", torch.bfloat16)])
def test_predictor_uses_its_device_policy(monkeypatch, gpu, want):
    from nnsam2.inference.predictor import SAM2Predictor
    if gpu:
        fake_gpu(monkeypatch, gpu)
    predictor = SAM2Predictor(device=torch.device("cuda" if gpu else "cpu"),
                              perform_everything_on_device=False, allow_tqdm=False)
    predictor.network = build_network(1, 2, size="toy")
    predictor.network.autocast_dtype = torch.float32  # anything else: must be replaced
    predictor.use_device_precision()
    assert predictor.network.autocast_dtype == want
