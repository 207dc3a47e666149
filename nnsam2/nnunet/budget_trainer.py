"""Trainers with a CPU-time budget instead of an epoch count: for comparisons "on the same CPU
budget" (``2d`` vs ``2d_mem`` in documentation/memory.md), where a fixed number of iterations
would favour the cheaper configuration.

The budget is the training process's CPU time (``time.process_time``: all its threads) in
seconds, from ``nnSAM2_cpu_budget_s``; run with ``nnUNet_n_proc_DA=0`` so that data
augmentation is counted too. The learning rate follows nnU-Net's poly schedule over the fraction
of the budget spent; training ends after the epoch in which the budget runs out, with nnU-Net's
usual end (final checkpoint). There is no final validation: these runs are compared on a test
set predicted with ``nnsam2_predict`` (same cases, same settings for every configuration).
"""
import os
import time

from nnsam2.nnunet.environment import UsageError
from nnsam2.nnunet.trainers import SAM2DualAdapterTrainer, SAM2DualAdapterTrainer_LW

ENV_BUDGET = "nnSAM2_cpu_budget_s"
POLY_EXPONENT = 0.9  # nnU-Net's PolyLRScheduler


__all__ = ["SAM2DualAdapterTrainer_CPUBudget", "SAM2DualAdapterTrainer_LW_CPUBudget"]


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


class _CPUBudget:
    sam2_initial_lr = 2e-3  # random-init comparisons on a CPU, as the demo trainer
    sam2_num_epochs = 10_000  # never reached: the budget ends training
    sam2_iterations_per_epoch = 5  # short epochs: the budget is checked between epochs
    sam2_val_iterations_per_epoch = 1

    def on_train_start(self):
        budget = os.environ.get(ENV_BUDGET)
        try:
            self.cpu_budget_s = float(budget)
        except (TypeError, ValueError):
            raise UsageError(f"{type(self).__name__} trains for a CPU-time budget: set "
                             f"{ENV_BUDGET} to seconds (got {budget!r})") from None
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

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        self.print_to_log_file("no final validation (CPU-budget comparison trainer)")

    def run_training(self):
        try:
            super().run_training()
        except _BudgetSpent:
            self.print_to_log_file(f"CPU budget of {self.cpu_budget_s:.0f} s spent after "
                                   f"{self.current_epoch} epochs")
            self.on_train_end()


class SAM2DualAdapterTrainer_CPUBudget(_CPUBudget, SAM2DualAdapterTrainer):
    """The default (HP) trainer for a CPU-time budget (``nnSAM2_cpu_budget_s``)."""


class SAM2DualAdapterTrainer_LW_CPUBudget(_CPUBudget, SAM2DualAdapterTrainer_LW):
    """The LW trainer for a CPU-time budget (``nnSAM2_cpu_budget_s``)."""
