"""nnU-Net trainers whose network is the adapted SAM2.

Optimiser: AdamW (lr 1e-4, weight decay 1e-2 on matrices and kernels only) over the trainable
parameters, nnU-Net's poly schedule; deep supervision off; torch.compile only when
``nnUNet_compile=t``. Precision is decided once per run from the device
(:mod:`nnsam2.network.precision`): bf16 autocast without GradScaler on GPUs with native bf16
(compute capability 8.0+), fp16 autocast with a GradScaler on older GPUs (T4, V100, RTX 20xx),
fp32 on CPU. The network runs in that dtype whoever opens autocast (nnU-Net's validation opens
fp16); the HP adapter's deformable convolution is chosen per device too (``sam2_deform_impl``).
Both are logged at the start and recorded in ``fold_X/precision.json``
(:mod:`nnsam2.training.precision_record`). Checkpoints are lean (frozen SAM2 stored once per
model folder), written atomically and read without unpickling code
(:mod:`nnsam2.training.checkpoint_files`).

The method trainers are in :mod:`.method_trainers`, schedule variants (``..._5epochs``) in
:mod:`.variants.training_length`, short trainers for demos and benchmarks in
:mod:`.variants.benchmarking`. The run's settings (SAM2 initialisation, what trains) come from
``fold_X/sam2_init.json`` (:mod:`nnsam2.training.run_settings`), written before training starts.
"""
import os
import sys
from dataclasses import replace
from functools import cached_property
from typing import Optional

import torch
from torch import distributed as dist
from torch import nn
from tqdm import tqdm
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnsam2.network import AdapterCfg, build_memory_network, build_network, \
    load_sam2_checkpoint, model_summary
from nnsam2.network.build import set_trainable
from nnsam2.network.configs import resolve
from nnsam2.network.deform_conv import default_impl
from nnsam2.network.precision import Precision, make_grad_scaler, policy_for
from nnsam2.training import checkpoint_files, precision_record, run_settings
from nnsam2.inference.batched_prediction import predictor_class_injected
from nnsam2.training.pretrained_weights import load_nnsam2_pretrained, load_trained_2d
from nnsam2.utils.progress import show_progress
from nnsam2.training import out_of_memory
from nnsam2.utils.nnunet_env import UsageError, compile_requested
from nnsam2.utils.wrappers import unwrap


class Schedule:
    """Learning rate, epochs and iterations as class attributes, for nnsam2's trainers and for
    nnU-Net's own (the benchmarks' short reference trainer): a variant sets one or two of them,
    so that one class name is one schedule. None keeps nnU-Net's value."""

    sam2_initial_lr = None  # nnU-Net: 1e-2 (nnsam2's trainers: 1e-4)
    sam2_num_epochs = None  # nnU-Net: 1000
    sam2_iterations_per_epoch = None  # nnU-Net: 250
    sam2_val_iterations_per_epoch = None  # nnU-Net: 50

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = self.sam2_initial_lr or self.initial_lr
        self.num_epochs = self.sam2_num_epochs or self.num_epochs
        self.num_iterations_per_epoch = self.sam2_iterations_per_epoch or self.num_iterations_per_epoch
        self.num_val_iterations_per_epoch = (self.sam2_val_iterations_per_epoch
                                             or self.num_val_iterations_per_epoch)


class nnSAM2Trainer(Schedule, nnUNetTrainer):
    """Base trainer. Subclasses set class attributes only (one class name = one experiment)."""

    adapter_kind = "hp"
    sam2_bottleneck_ratio = None  # None: the adapter kind's default (HP C/4, LW C/8)
    sam2_initial_lr = 1e-4
    sam2_weight_decay = 1e-2
    sam2_train_decoder = None  # None: "heads" (class tokens + hypernetwork MLPs); "full": all of it
    sam2_epochs_after_2d = 0.25  # 2d_mem started from the trained 2d model: this share of epochs
    sam2_lr_after_2d = 0.1  # ... at this share of the learning rate (fine-tuning, not a restart)
    sam2_deform_impl = None  # HP adapter; None: torchvision on CUDA, embedding_bag on CPU
    sam2_clicks = False  # the network also takes clicks (trainers/interactive.py)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False
        self.weight_decay = self.sam2_weight_decay
        self.grad_scaler = make_grad_scaler(self.precision, self.device)  # fp16 only
        self.weights_restored = False
        self._progress = None  # the epoch's progress bar, when one is shown
        self._settings = None
        self._settings_on_disk = False  # whether sam2_init.json held them

    @property
    def sam2_settings(self) -> run_settings.RunSettings:
        """This fold's settings, written by nnsam2_train before training (``sam2_init.json``);
        without them (nnU-Net's own nnUNetv2_train) they are resolved here, as nnsam2_train does
        without flags: a checkpoint from nnSAM2_checkpoint_dir, else an error saying what to do."""
        if self._settings is None:
            self._settings = run_settings.load(self.output_folder)
            self._settings_on_disk = self._settings is not None
            if self._settings is None:
                self._settings = run_settings.resolve(self.sam2_size)
        return self._settings

    def initialize(self):
        self._shorten_after_2d()
        super().initialize()

    def _shorten_after_2d(self) -> None:
        """A 2d_mem run that starts from the trained 2d model fine-tunes it: a shorter schedule
        at a lower learning rate (set before nnU-Net's initialize builds the optimiser and the
        poly schedule). Restarted at the full rate it lost part of what 2d had learnt
        (documentation/memory.md)."""
        settings = run_settings.load(self.output_folder)
        if settings is None or not settings.start_from_2d or self.was_initialized:
            return
        full = self.num_epochs
        self.num_epochs = max(1, round(full * self.sam2_epochs_after_2d))
        self.initial_lr *= self.sam2_lr_after_2d
        self.print_to_log_file(f"2d_mem after 2d: {self.num_epochs} epochs "
                               f"({self.sam2_epochs_after_2d:g} of {full}), learning rate "
                               f"{self.initial_lr:g} ({self.sam2_lr_after_2d:g} of the trainer's)")

    @classmethod
    def adapter_cfg(cls) -> AdapterCfg:
        return AdapterCfg(kind=cls.adapter_kind, bottleneck_ratio=cls.sam2_bottleneck_ratio,
                           train_decoder=cls.sam2_train_decoder, deform_impl=cls.sam2_deform_impl)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True) -> nn.Module:
        sam2 = configuration_manager.configuration.get("sam2")
        if sam2 is None:
            raise RuntimeError(
                "these plans have no 'sam2' entry; plan the dataset with "
                "nnsam2_plan_and_preprocess and train with -p nnSAM2Plans")
        if len(configuration_manager.patch_size) == 3:  # 2d_mem: slices read by SAM2's memory
            return build_memory_network(num_input_channels, num_output_channels,
                                        size=sam2["size"], adapter=cls.adapter_cfg(),
                                        clicks=cls.sam2_clicks)
        return build_network(num_input_channels, num_output_channels, size=sam2["size"],
                             adapter=cls.adapter_cfg(), clicks=cls.sam2_clicks)

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
        wanted = compile_requested()
        return wanted and super()._do_i_compile()

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        pass  # the SAM2 decoder has a single full-resolution output

    def _set_batch_size_and_oversample(self):
        """Under DDP every rank gets the same number of samples: nnU-Net's batch Dice all-gathers
        per-sample terms, and unequal batches fail in the collective (gloo) or hang (NCCL). The
        planned batch is rounded down to a multiple of the number of GPUs (at least one each)."""
        if self.is_ddp:
            world = dist.get_world_size()
            planned = self.configuration_manager.batch_size
            even = max(world, planned // world * world)
            if even != planned:
                self.print_to_log_file(f"batch size {planned} -> {even}: the same batch on each "
                                       f"of the {world} GPUs")
                self.configuration_manager.configuration["batch_size"] = even
        super()._set_batch_size_and_oversample()

    def configure_optimizers(self):
        net = unwrap(self.network)
        if self.sam2_settings.train_all:
            set_trainable(net, replace(resolve(self.adapter_cfg()), train_all=True))
        params = [p for p in net.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": self.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=self.initial_lr)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0 or self.disable_checkpointing:
            return super().save_checkpoint(filename)  # nothing written (nnU-Net says why)
        self._write_checkpoint(checkpoint_files.payload(self, unwrap(self.network)), filename)

    def _write_checkpoint(self, checkpoint: dict, filename: str) -> None:
        checkpoint_files.write(checkpoint, filename)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """nnU-Net's checkpoint fields restored; the file is read safely, lean weights expanded,
        and with ``--c`` an unreadable checkpoint falls back to the newest readable one."""
        if not self.was_initialized:
            self.initialize()
        checkpoint = filename_or_checkpoint
        if isinstance(checkpoint, (str, os.PathLike)):
            checkpoint, used = checkpoint_files.read(
                checkpoint, fallback=self.sam2_settings.resume,
                allow_pickle=self.sam2_settings.allow_pickle)
            self.print_to_log_file(f"loaded {used} (epoch {checkpoint['current_epoch']})")
        checkpoint_files.restore(self, unwrap(self.network), checkpoint)
        self.weights_restored = True

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        """nnU-Net's final validation, several patches per forward pass
        (:mod:`nnsam2.inference.batched_prediction`; budget: ``nnSAM2_prediction_memory_gb``)."""
        with predictor_class_injected(sys.modules[nnUNetTrainer.__module__]):
            super().perform_actual_validation(save_probabilities)

    def on_train_start(self):
        super().on_train_start()
        self._apply_precision()
        self._initialise_sam2_weights()
        self._log_network()

    def _initialise_sam2_weights(self) -> None:
        settings = self.sam2_settings
        if self.weights_restored:
            self.print_to_log_file(f"continuing training; {run_settings.describe(settings)}")
            return
        if settings.mode == "nnunet_pretrained":
            report = load_nnsam2_pretrained(unwrap(self.network), settings.pretrained,
                                            settings.checkpoint, settings.allow_pickle)
            self.print_to_log_file(report.summary())
        elif settings.mode == "checkpoint":
            report = load_sam2_checkpoint(unwrap(self.network), settings.checkpoint)
            self.print_to_log_file(report.summary())
        self._start_memory_network(settings)
        if self.local_rank == 0 and not self._settings_on_disk:
            run_settings.save(self.output_folder, settings)  # nnUNetv2_train: keep the record
        self.print_to_log_file(run_settings.describe(settings))

    @cached_property
    def precision(self) -> Precision:
        """This run's precision, decided once from the device (:mod:`nnsam2.network.precision`)."""
        return policy_for(self.device)

    def deform_impl_in_use(self) -> Optional[str]:
        """The HP adapter's deformable convolution on this device (None without HP adapters)."""
        if self.adapter_kind != "hp":
            return None
        return self.sam2_deform_impl or default_impl(self.device)

    def _apply_precision(self) -> None:
        """The network runs in the run's dtype under any autocast; logged and recorded in
        ``fold_X/precision.json``."""
        unwrap(self.network).autocast_dtype = self.precision.autocast_dtype
        record = precision_record.record(self.device, self.precision, self.deform_impl_in_use())
        self.print_to_log_file(precision_record.describe(record))
        if self.local_rank == 0:
            precision_record.save(self.output_folder, record)

    def _start_memory_network(self, settings: run_settings.RunSettings) -> None:
        """2d_mem: the trained 2d model's weights, and the memory gate (closed unless asked)."""
        net = unwrap(self.network)
        if settings.start_from_2d:
            report = load_trained_2d(net, settings.start_from_2d, settings.allow_pickle)
            self.print_to_log_file(report.summary())
        if settings.gate_open:
            net.open_gate()
        if hasattr(net, "gate"):
            self.print_to_log_file("memory gate " + ("open: SAM2's memory path" if settings.gate_open
                                   else "closed: the network starts as the 2d network"))

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._progress = None
        if self.local_rank == 0 and self._progress_wanted():
            self._progress = tqdm(total=self.num_iterations_per_epoch, unit="it", leave=False,
                                  desc=f"epoch {self.current_epoch}/{self.num_epochs}")

    def _progress_wanted(self) -> bool:
        """A per-iteration bar for a person at a terminal; never in logs."""
        setting = self.sam2_settings.progress_bar
        return show_progress() if setting is None else setting

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

    def run_training(self):
        """nnU-Net's training; running out of GPU memory ends it with one line naming the
        planned batch and patch and what to do (:mod:`nnsam2.training.out_of_memory`)."""
        try:
            super().run_training()
        except torch.OutOfMemoryError as error:
            message = out_of_memory.message_for(self)
            self.print_to_log_file(message)
            raise UsageError(message) from error
