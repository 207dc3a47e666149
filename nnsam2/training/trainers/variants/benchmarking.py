"""Short trainers for demos and measurements, not for real training.

* ``SAM2DualAdapterTrainer_CPUDemo``: the demo's schedule (toy size, random init, CPU);
  ``SAM2DualAdapterTrainer_Interactive_CPUDemo``, ``nnsam2_demo``'s trainer, also takes clicks.
* ``..._CPUBudget``: train for a CPU-time budget instead of an epoch count, for comparisons "on
  the same CPU budget" (``2d`` vs ``2d_mem``, documentation/memory.md), where a fixed number of
  iterations would favour the cheaper configuration.
* ``WholeCaseBench_*``: one epoch of a few iterations and no validation, for
  ``nnsam2_benchmark --whole_case`` (only prediction is timed; the weights only have to exist),
  including nnU-Net's own U-Net trainer as the reference.

All of them set their schedule through :class:`Schedule`'s class attributes.
"""
import json
import os
import time

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnsam2.training.trainers.interactive import InteractiveTraining
from nnsam2.training.trainers.method_trainers import (SAM2DualAdapterTrainer,
                                                      SAM2DualAdapterTrainer_LW, SAM2LoRATrainer)
from nnsam2.training.trainers.nnsam2_trainer import Schedule
from nnsam2.utils.nnunet_env import UsageError

BUDGET_FILE = "cpu_budget.json"  # {"seconds": N} in the fold folder, written before training
POLY_EXPONENT = 0.9  # nnU-Net's PolyLRScheduler


class SAM2DualAdapterTrainer_CPUDemo(SAM2DualAdapterTrainer):
    """Short, higher-LR schedule for the random-init toy demo on a CPU."""
    sam2_initial_lr = 2e-3
    sam2_num_epochs = 6
    sam2_iterations_per_epoch = 30
    sam2_val_iterations_per_epoch = 10


class SAM2DualAdapterTrainer_Interactive_CPUDemo(InteractiveTraining,
                                                 SAM2DualAdapterTrainer_CPUDemo):
    """The demo's schedule, also learning to take clicks (``nnsam2_demo``'s trainer)."""


class _NoFinalValidation:
    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        self.print_to_log_file(f"no final validation ({type(self).__name__} is a measuring trainer)")


class _WholeCase(_NoFinalValidation, Schedule):
    """One epoch; the benchmark sets ``num_iterations_per_epoch`` on the instance it trains."""
    sam2_num_epochs = 1
    sam2_iterations_per_epoch = 2
    sam2_val_iterations_per_epoch = 1


class WholeCaseBench_nnUNetTrainer(_WholeCase, nnUNetTrainer):
    """nnU-Net's default 2D U-Net trainer, shortened: the whole-case benchmark's reference."""


class WholeCaseBench_HP(_WholeCase, SAM2DualAdapterTrainer):
    pass


class WholeCaseBench_LW(_WholeCase, SAM2DualAdapterTrainer_LW):
    pass


class WholeCaseBench_LoRA(_WholeCase, SAM2LoRATrainer):
    pass


class _BudgetSpent(Exception):
    pass


class BudgetPolyLR:
    """nnU-Net's poly schedule over the fraction of the CPU budget spent (nnU-Net's trainer
    calls ``step(epoch)`` at the start of every epoch; the epoch number is not used)."""

    def __init__(self, optimizer, initial_lr: float, fraction_spent):
        self.optimizer, self.initial_lr, self.fraction_spent = optimizer, initial_lr, fraction_spent

    def step(self, epoch=None) -> None:
        lr = self.initial_lr * max(0.0, 1.0 - self.fraction_spent()) ** POLY_EXPONENT
        for group in self.optimizer.param_groups:
            group["lr"] = lr


def write_cpu_budget(fold_folder: str, seconds: float) -> None:
    """Give a CPU-budget training of ``fold_folder`` its budget (before it starts)."""
    os.makedirs(fold_folder, exist_ok=True)
    with open(os.path.join(fold_folder, BUDGET_FILE), "w") as f:
        json.dump({"seconds": float(seconds)}, f)


def read_cpu_budget(fold_folder: str) -> float:
    path = os.path.join(fold_folder, BUDGET_FILE)
    try:
        with open(path) as f:
            seconds = float(json.load(f)["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"a CPU-budget trainer needs its budget in {path}: write "
                         f'{{"seconds": N}} there before training (process CPU seconds)') from None
    if seconds <= 0:
        raise UsageError(f"{path}: the CPU budget must be > 0 seconds, got {seconds}")
    return seconds


class _CPUBudget(_NoFinalValidation):
    """The budget is the training process's CPU time (``time.process_time``: all its threads),
    read from ``fold_X/cpu_budget.json``; run with ``nnUNet_n_proc_DA=0`` so that data
    augmentation is counted too. The learning rate follows nnU-Net's poly schedule over the
    fraction of the budget spent; training ends after the epoch in which the budget runs out,
    with nnU-Net's usual end (final checkpoint). These runs are compared on a test set predicted
    with ``nnsam2_predict`` (same cases and settings for every configuration)."""
    sam2_initial_lr = 2e-3  # random-init comparisons on a CPU, as the demo trainer
    sam2_num_epochs = 10_000  # never reached: the budget ends training
    sam2_iterations_per_epoch = 5  # short epochs: the budget is checked between epochs
    sam2_val_iterations_per_epoch = 1

    def on_train_start(self):
        self.cpu_budget_s = read_cpu_budget(self.output_folder)
        self._cpu_start = time.process_time()
        super().on_train_start()

    def budget_fraction(self) -> float:
        return (time.process_time() - self._cpu_start) / self.cpu_budget_s

    def configure_optimizers(self):
        optimizer, _ = super().configure_optimizers()
        return optimizer, BudgetPolyLR(optimizer, self.initial_lr, self.budget_fraction)

    def on_train_epoch_start(self):
        spent = self.budget_fraction()
        if spent >= 1.0:
            raise _BudgetSpent()
        super().on_train_epoch_start()  # steps BudgetPolyLR and logs its rate
        self.print_to_log_file(f"CPU budget spent: {100 * spent:.1f}% of {self.cpu_budget_s:.0f} s")

    def run_training(self):
        try:
            super().run_training()
        except _BudgetSpent:
            self.print_to_log_file(f"CPU budget of {self.cpu_budget_s:.0f} s spent after "
                                   f"{self.current_epoch} epochs")
            self.on_train_end()


class SAM2DualAdapterTrainer_CPUBudget(_CPUBudget, SAM2DualAdapterTrainer):
    """The default (HP) trainer for a CPU-time budget (``fold_X/cpu_budget.json``)."""


class SAM2DualAdapterTrainer_CPUBudgetScratch(SAM2DualAdapterTrainer_CPUBudget):
    """The same trainer under another name, so that a ``2d_mem`` model trained without the
    ``2d`` model (``--from-scratch``) lives beside the one started from it."""


class SAM2DualAdapterTrainer_LW_CPUBudget(_CPUBudget, SAM2DualAdapterTrainer_LW):
    """The LW trainer for a CPU-time budget (``fold_X/cpu_budget.json``)."""
