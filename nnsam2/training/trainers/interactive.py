"""Trainers that also learn to take clicks (issue: correct a prediction with a few clicks).

For a share of the samples of each batch (default all) 1..N clicks are simulated from the
reference (:func:`nnsam2.interactive.click_simulation.sample_training_clicks`): positives inside a
class region away from its border, negatives in background next to foreground. Each clicked
sample then gets a second-round click on the largest error of a no-grad first pass, as SAM's
iterative training does. The clicks travel as a click map in an extra input channel
(:mod:`nnsam2.network.click_prompts`). Every sample also trains the prompt-free mode, as with the
plain trainer: for a clicked sample the network returns both predictions, prompt-free and with
clicks, from one run of the image encoder (``SAM2SegNet.train_both_modes``), and the loss sees
both. Validation is prompt-free.
"""
import contextlib

import numpy as np
import torch

from nnsam2.interactive.click_simulation import error_click, sample_training_clicks
from nnsam2.utils.wrappers import unwrap
from nnsam2.training.trainers.method_trainers import (SAM2DualAdapterTrainer,
                                                      SAM2DualAdapterTrainer_LW, SAM2LoRATrainer)


class InteractiveTraining:
    """Mixin: clicks simulated for ``sam2_click_share`` of the samples."""
    sam2_clicks = True
    # samples that also train with clicks (all of them train prompt-free); with half, the
    # context dataset's clicks gained less (documentation/interactive.md)
    sam2_click_share = 1.0
    sam2_max_clicks = 3  # first-round clicks per clicked sample: 1..this many
    sam2_error_round_share = 1.0  # clicked samples that get a click on a first pass's errors

    def on_train_start(self):
        if self.label_manager.has_regions:
            raise NotImplementedError(f"{type(self).__name__}: clicks name one class each; "
                                      f"region-based labels are not supported")
        super().on_train_start()
        self._click_rng = np.random.default_rng(1234 + 7919 * self.local_rank + int(
            str(self.fold).isdigit() and int(self.fold)))
        unwrap(self.network).train_both_modes = True

    def train_step(self, batch: dict) -> dict:
        """Every sample trains the prompt-free mode, as with the plain trainer; the clicked ones
        also train with their clicks (the network returns both, the encoder runs once)."""
        data = self.with_click_map(batch["data"], batch["target"])
        clicked = data[:, -1].flatten(1).any(1).cpu()
        target = batch["target"]
        target = ([torch.cat([t, t[clicked]]) for t in target] if isinstance(target, list)
                  else torch.cat([target, target[clicked]]))
        return super().train_step(dict(batch, data=data, target=target))

    def with_click_map(self, data: torch.Tensor, target) -> torch.Tensor:
        """``data`` (B, C, *spatial) with the simulated clicks' map as channel C; a 2d_mem patch
        (B, C, D, H, W) gets its clicks on one slice, which its memory carries to the others."""
        target = (target[0] if isinstance(target, list) else target)[:, 0].cpu().numpy()
        click_map = torch.zeros((len(data), 1, *data.shape[2:]), dtype=data.dtype)
        ignore = self.label_manager.ignore_label
        slices = {}  # clicked sample -> index of its clicked slice (2D: ())
        for b in range(len(data)):
            if self._click_rng.random() < self.sam2_click_share:
                slices[b] = self._clicked_slice(target[b])
                _draw(click_map[b, 0][slices[b]], sample_training_clicks(
                    target[b][slices[b]], self._click_rng, self.sam2_max_clicks,
                    ignore_label=ignore))
        second = [b for b in slices if self._click_rng.random() < self.sam2_error_round_share]
        if second:
            self._add_error_clicks(data, target, click_map, second, slices)
        return torch.cat([data, click_map.to(data.device)], dim=1)

    def _clicked_slice(self, target: np.ndarray) -> tuple:
        """() for a 2D patch; for a (D, H, W) patch a slice with foreground, if there is one."""
        if target.ndim == 2:
            return ()
        foreground = np.flatnonzero((target > 0).any(axis=(1, 2)))
        pool = foreground if len(foreground) else np.arange(len(target))
        return (int(self._click_rng.choice(pool)),)

    @torch.no_grad()
    def _add_error_clicks(self, data, target, click_map, samples, slices) -> None:
        """A click at the centre of the largest error of a no-grad pass with the first clicks,
        on the sample's clicked slice."""
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
            click = error_click(pred[slices[b]], target[b][slices[b]])
            if click is not None:
                _draw(click_map[b, 0][slices[b]], click)


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


INTERACTIVE_TRAINERS = (SAM2DualAdapterTrainer_Interactive, SAM2DualAdapterTrainer_LW_Interactive,
                        SAM2LoRATrainer_Interactive)
