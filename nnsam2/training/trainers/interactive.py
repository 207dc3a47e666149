"""Trainers that also learn to take clicks (issue: correct a prediction with a few clicks).

For a share of the samples of each batch (default half) 1..N clicks are simulated from the
reference (:func:`nnsam2.interactive.click_simulation.sample_training_clicks`): positives inside a
class region away from its border, negatives in background next to foreground. For half of the
clicked samples a second-round click follows on the errors of a no-grad first pass, as SAM's
iterative training does. The clicks travel as a click map in an extra input channel
(:mod:`nnsam2.network.click_prompts`); the other samples train the prompt-free mode as the plain
trainer does, and validation is prompt-free.
"""
import contextlib

import numpy as np
import torch

from nnsam2.interactive.click_simulation import error_click, sample_training_clicks
from nnsam2.training.trainers.method_trainers import (SAM2DualAdapterTrainer,
                                                      SAM2DualAdapterTrainer_LW, SAM2LoRATrainer)


class InteractiveTraining:
    """Mixin: clicks simulated for ``sam2_click_share`` of the samples."""
    sam2_clicks = True
    sam2_click_share = 0.5  # samples with clicks; the rest keep the prompt-free mode as good
    sam2_max_clicks = 3  # first-round clicks per clicked sample: 1..this many
    sam2_error_round_share = 0.5  # clicked samples that get a click on a first pass's errors

    def on_train_start(self):
        if self.label_manager.has_regions:
            raise NotImplementedError(f"{type(self).__name__}: clicks name one class each; "
                                      f"region-based labels are not supported")
        super().on_train_start()
        self._click_rng = np.random.default_rng(1234 + 7919 * self.local_rank + int(
            str(self.fold).isdigit() and int(self.fold)))

    def train_step(self, batch: dict) -> dict:
        batch = dict(batch, data=self.with_click_map(batch["data"], batch["target"]))
        return super().train_step(batch)

    def with_click_map(self, data: torch.Tensor, target) -> torch.Tensor:
        """``data`` (B, C, H, W) with the simulated clicks' map as channel C."""
        target = (target[0] if isinstance(target, list) else target)[:, 0].cpu().numpy()
        click_map = torch.zeros((len(data), 1, *data.shape[2:]), dtype=data.dtype)
        ignore = self.label_manager.ignore_label
        clicked = []
        for b in range(len(data)):
            if self._click_rng.random() < self.sam2_click_share:
                _draw(click_map[b, 0], sample_training_clicks(
                    target[b], self._click_rng, self.sam2_max_clicks, ignore_label=ignore))
                clicked.append(b)
        second = [b for b in clicked if self._click_rng.random() < self.sam2_error_round_share]
        if second:
            self._add_error_clicks(data, target, click_map, second)
        return torch.cat([data, click_map.to(data.device)], dim=1)

    @torch.no_grad()
    def _add_error_clicks(self, data, target, click_map, samples) -> None:
        """A click at the centre of the largest error of a no-grad pass with the first clicks."""
        was_training = self.network.training
        self.network.eval()  # no dropout in the simulated user's view
        try:
            inputs = torch.cat([data[samples], click_map[samples]], dim=1).to(self.device)
            with (torch.autocast(self.device.type) if self.device.type == "cuda"
                  else contextlib.nullcontext()):  # as nnU-Net's train_step
                prediction = self.network(inputs).argmax(1).cpu().numpy()
        finally:
            self.network.train(was_training)
        for b, pred in zip(samples, prediction):
            click = error_click(pred, target[b])
            if click is not None:
                _draw(click_map[b, 0], click)


def _draw(click_map: torch.Tensor, clicks: np.ndarray) -> None:
    """Write (n, 3) (class, y, x) clicks into an (H, W) map as class + 1."""
    for label, y, x in np.asarray(clicks).reshape(-1, 3).astype(int):
        click_map[y, x] = label + 1


class SAM2DualAdapterTrainer_Interactive(InteractiveTraining, SAM2DualAdapterTrainer):
    """The default (PEG + HP adapter) trainer, also learning to take clicks."""


class SAM2DualAdapterTrainer_LW_Interactive(InteractiveTraining, SAM2DualAdapterTrainer_LW):
    """PEG + Lightweight adapter, also learning to take clicks."""


class SAM2LoRATrainer_Interactive(InteractiveTraining, SAM2LoRATrainer):
    """SAM2LoRA, also learning to take clicks."""
