"""nnU-Net trainers whose network is the adapted SAM2.

Optimiser: AdamW (lr 1e-4, weight decay 1e-2 on matrices and kernels only) over the trainable
parameters, nnU-Net's poly schedule; deep supervision off; bf16 autocast on CUDA (the network
switches any autocast to bf16 itself; no GradScaler); plain fp32 on CPU; torch.compile only when
``nnUNet_compile=t``. Checkpoints are lean (frozen SAM2 stored once per model folder), written
atomically and read without unpickling code (:mod:`nnsam2.nnunet.checkpointing`).

Schedule variants (``..._5epochs`` etc.) are in :mod:`nnsam2.nnunet.trainer_schedules`, the CPU
demo trainer in :mod:`nnsam2.nnunet.demo_trainer`.
"""
import os
import sys
from dataclasses import replace

import torch
from torch import nn
from torch._dynamo import OptimizedModule
from tqdm import tqdm
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnsam2.losses import CompositeLoss
from nnsam2.network import AdapterCfg, build_memory_network, build_network, \
    load_sam2_checkpoint, model_summary
from nnsam2.network.build import set_trainable
from nnsam2.network.configs import resolve
from nnsam2.nnunet import checkpointing, init_policy
from nnsam2.nnunet.batched_prediction import predictor_class_injected
from nnsam2.nnunet.finetune import load_nnsam2_pretrained


ENV_PROGRESS = "nnSAM2_progress_bar"  # "1"/"0", set by nnsam2_train (--disable_progress_bar)


def progress_wanted() -> bool:
    """A per-iteration bar for a person at a terminal; never in logs (nnU-Net's own commands
    without the variable: only when stderr is a terminal)."""
    setting = os.environ.get(ENV_PROGRESS)
    return setting == "1" if setting is not None else sys.stderr.isatty()


def unwrap(network: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    if isinstance(network, nn.parallel.DistributedDataParallel):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return network


class nnSAM2Trainer(nnUNetTrainer):
    """Base trainer. Subclasses set class attributes only (one class name = one experiment)."""

    adapter_kind = "hp"
    sam2_bottleneck_ratio = None  # None: the adapter kind's default (HP C/4, LW C/8)
    sam2_initial_lr = 1e-4
    sam2_weight_decay = 1e-2
    sam2_num_epochs = None  # None: nnU-Net's 1000
    sam2_iterations_per_epoch = None  # None: nnU-Net's 250
    sam2_val_iterations_per_epoch = None  # None: nnU-Net's 50
    sam2_train_decoder = None  # None: "heads" (class tokens + hypernetwork MLPs); "full": all of it

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False
        self.initial_lr = self.sam2_initial_lr
        self.weight_decay = self.sam2_weight_decay
        self.num_epochs = self.sam2_num_epochs or self.num_epochs
        self.num_iterations_per_epoch = self.sam2_iterations_per_epoch or self.num_iterations_per_epoch
        self.num_val_iterations_per_epoch = (self.sam2_val_iterations_per_epoch
                                             or self.num_val_iterations_per_epoch)
        self.grad_scaler = None  # bf16 autocast needs no loss scaling
        self.weights_restored = False
        self._progress = None  # the epoch's progress bar, when one is shown

    @classmethod
    def adapter_cfg(cls) -> AdapterCfg:
        return AdapterCfg(kind=cls.adapter_kind, bottleneck_ratio=cls.sam2_bottleneck_ratio,
                           train_decoder=cls.sam2_train_decoder)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True) -> nn.Module:
        sam2 = configuration_manager.configuration.get("sam2")
        if sam2 is None:
            raise RuntimeError(
                "these plans have no 'sam2' entry; plan the dataset with "
                "nnsam2_plan_and_preprocess and train with -p nnSAM2Plans")
        builder = build_memory_network if len(configuration_manager.patch_size) == 3 \
            else build_network  # 2d_mem: (slices, H, W) patches read by SAM2's memory
        return builder(num_input_channels, num_output_channels, size=sam2["size"],
                       adapter=cls.adapter_cfg())

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """nnU-Net's choice; for ``2d_mem`` (a few slices of a large in-plane patch) that is its
        anisotropic "dummy 2D" augmentation: in-plane rotation and scaling of every slice alike.
        Test-time mirroring stays in-plane: the network already reads each run both ways."""
        rotation, dummy_2d, initial_patch, mirror_axes = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if len(self.configuration_manager.patch_size) == 3:
            assert dummy_2d, "2d_mem patches are thin runs of slices (nnU-Net's anisotropic case)"
            self.inference_allowed_mirroring_axes = (1, 2)
        return rotation, dummy_2d, initial_patch, mirror_axes

    @property
    def sam2_size(self) -> str:
        return self.configuration_manager.configuration["sam2"]["size"]

    def _do_i_compile(self) -> bool:
        # Opt-in: Hiera-T does not compile upstream either (sam2 configs say so).
        wanted = os.environ.get("nnUNet_compile", "f").lower() in ("true", "1", "t")
        return wanted and super()._do_i_compile()

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        pass  # the SAM2 decoder has a single full-resolution output

    def configure_optimizers(self):
        net = unwrap(self.network)
        if init_policy.resolve_train_all():
            set_trainable(net, replace(resolve(self.adapter_cfg()), train_all=True))
        params = [p for p in net.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": self.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=self.initial_lr)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0 or self.disable_checkpointing:
            return super().save_checkpoint(filename)  # nothing written (nnU-Net says why)
        self._write_checkpoint(checkpointing.payload(self, unwrap(self.network)), filename)

    def _write_checkpoint(self, checkpoint: dict, filename: str) -> None:
        checkpointing.write(checkpoint, filename)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """nnU-Net's checkpoint fields restored; the file is read safely, lean weights expanded,
        and with ``--c`` an unreadable checkpoint falls back to the newest readable one."""
        if not self.was_initialized:
            self.initialize()
        checkpoint = filename_or_checkpoint
        if isinstance(checkpoint, (str, os.PathLike)):
            checkpoint, used = checkpointing.read(
                checkpoint, fallback=os.environ.get(checkpointing.ENV_RESUME) == "1")
            self.print_to_log_file(f"loaded {used} (epoch {checkpoint['current_epoch']})")
        checkpointing.restore(self, unwrap(self.network), checkpoint)
        self.weights_restored = True

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        """nnU-Net's final validation, several patches per forward pass
        (:mod:`nnsam2.nnunet.batched_prediction`; budget: ``nnSAM2_prediction_memory_gb``)."""
        with predictor_class_injected(sys.modules[nnUNetTrainer.__module__]):
            super().perform_actual_validation(save_probabilities)

    def on_train_start(self):
        super().on_train_start()
        self._initialise_sam2_weights()
        self._log_network()

    def _initialise_sam2_weights(self) -> None:
        record = init_policy.load_record(self.output_folder)
        if self.weights_restored and record is not None:
            self.print_to_log_file(f"continuing training; {init_policy.describe(record)}")
            return
        policy = init_policy.resolve_policy(self.sam2_size)
        if policy.mode == "nnunet_pretrained":
            report = load_nnsam2_pretrained(unwrap(self.network), policy.pretrained,
                                            policy.checkpoint)
            self.print_to_log_file(report.summary())
        elif policy.mode == "checkpoint":
            report = load_sam2_checkpoint(unwrap(self.network), policy.checkpoint)
            self.print_to_log_file(report.summary())
        if self.local_rank == 0:
            init_policy.save_record(self.output_folder, policy)
        self.print_to_log_file(init_policy.describe(policy))

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._progress = None
        if self.local_rank == 0 and progress_wanted():
            self._progress = tqdm(total=self.num_iterations_per_epoch, unit="it", leave=False,
                                  desc=f"epoch {self.current_epoch}/{self.num_epochs}")

    def train_step(self, batch: dict) -> dict:
        outputs = super().train_step(batch)
        if self._progress is not None:
            self._progress.set_postfix(loss=f"{outputs['loss']:.4f}", refresh=False)
            self._progress.update()
        return outputs

    def on_train_epoch_end(self, train_outputs):
        if self._progress is not None:
            self._progress.close()
        super().on_train_epoch_end(train_outputs)

    def _log_network(self) -> None:
        net = unwrap(self.network)
        patch = self.configuration_manager.patch_size
        summary = model_summary(net, (1, self.num_input_channels, *patch))
        self.print_to_log_file(f"adapted SAM2 ({self.sam2_size}, adapter {self.adapter_kind!r}), "
                               f"per component:\n{summary}", add_timestamp=False)


class SAM2DualAdapterTrainer(nnSAM2Trainer):
    """PEG + High-Performance (deformable-conv) adapter: the default. SAM2 stays frozen; PEGs,
    adapters, input stem and the class tokens with their hypernetwork MLPs train."""
    adapter_kind = "hp"


class SAM2DualAdapterTrainer_LW(nnSAM2Trainer):
    """PEG + Lightweight (re-parameterisable) adapter; SAM2 frozen as for the default."""
    adapter_kind = "lw"


class SAM2DualAdapterTrainer_LWWide(SAM2DualAdapterTrainer_LW):
    """Lightweight adapter with the HP adapter's C/4 bottleneck: more capacity, but its fused form
    costs about 6% more compute than frozen SAM2 (the default LW's C/8 about 2%)."""
    sam2_bottleneck_ratio = 0.25


class SAM2VanillaTrainer(nnSAM2Trainer):
    """Frozen SAM2 with its own position encodings; only the decoder parts the adapter trainers
    train (class tokens, hypernetwork MLPs) and the stem train: the baseline."""
    adapter_kind = "none"


class SAM2LoRATrainer(nnSAM2Trainer):
    """SAM2LoRA (arXiv 2510.10288): LoRA (rank 8, alpha 16, dropout 0.1) on every Hiera block's
    attn.qkv and the decoder transformer's attention linears, SAM2's own position encodings (no
    PEG); class tokens and hypernetwork MLPs train; composite BCE + soft Dice + Focal Tversky loss
    (1:1:1, alpha 0.7, beta 0.3, gamma 0.75)."""
    adapter_kind = "lora"

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise NotImplementedError("SAM2LoRATrainer's composite loss does not support "
                                      "region-based training")
        return CompositeLoss(ignore_label=self.label_manager.ignore_label,
                             batch_dice=self.configuration_manager.batch_dice)


class SAM2DualAdapterTrainer_FullDecoder(SAM2DualAdapterTrainer):
    """HP adapter with the whole mask decoder trainable (not the paper's setting: it trains
    SAM2's decoder transformer and upscaling too, about 4 M more parameters)."""
    sam2_train_decoder = "full"


class SAM2DualAdapterTrainer_LW_FullDecoder(SAM2DualAdapterTrainer_LW):
    """LW adapter with the whole mask decoder trainable (not the paper's setting)."""
    sam2_train_decoder = "full"


class SAM2VanillaTrainer_FullDecoder(SAM2VanillaTrainer):
    """Frozen SAM2 encoder with the whole mask decoder trainable (decoder fine-tuning baseline)."""
    sam2_train_decoder = "full"


BASE_TRAINERS = (SAM2DualAdapterTrainer, SAM2DualAdapterTrainer_LW, SAM2DualAdapterTrainer_LWWide,
                 SAM2VanillaTrainer, SAM2LoRATrainer, SAM2DualAdapterTrainer_FullDecoder,
                 SAM2DualAdapterTrainer_LW_FullDecoder, SAM2VanillaTrainer_FullDecoder)

__all__ = ["nnSAM2Trainer", *(t.__name__ for t in BASE_TRAINERS)]
