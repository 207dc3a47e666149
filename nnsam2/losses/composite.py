"""Composite BCE + soft Dice + Focal Tversky loss for softmax (multi-class) segmentation heads.

SAM2LoRA (Mandal et al., arXiv 2510.10288) trains with BCE + SoftDice + FocalTversky, weights 1:1:1,
Tversky alpha 0.7 (false negatives), beta 0.3 (false positives), gamma 0.75.

nnU-Net heads are softmax-based: the network gives K logit maps (background included), so every term
here works one-vs-rest on the softmax probabilities of the foreground classes k = 1..K-1 and is then
averaged over those classes. The background logit still receives gradients through the softmax.

Focal Tversky exponent: Abraham & Khan 2019 (https://arxiv.org/abs/1810.07842) write
FTL = (1 - TI)^(1/gamma_paper) with gamma_paper in [1, 3] (best 4/3). Here the exponent is ``gamma``
itself, ``FTL = (1 - TI)^gamma``, as in SAM2LoRA: gamma = 0.75 equals the paper's 1/gamma_paper with
gamma_paper = 4/3.
"""
import logging
from typing import Dict, Optional, Tuple

import torch
from nnunetv2.utilities.ddp_allgather import AllGatherGrad
from torch import nn

logger = logging.getLogger(__name__)

# (1 - TI) is clamped to this before the power: d/dx x^0.75 is infinite at x = 0.
_FOCAL_EPS = 1e-6


class CompositeLoss(nn.Module):
    """``w_bce * BCE + w_dice * SoftDice + w_tversky * FocalTversky`` on softmax probabilities.

    Soft counts per foreground class k (p = softmax probability, t = one-hot target, both over
    the valid, i.e. not-ignored, pixels): TP = sum p t, FP = sum p (1 - t), FN = sum (1 - p) t.

    - BCE: mean over valid pixels and foreground classes of -(t log p + (1 - t) log(1 - p)), with
      log p from log-softmax and log(1 - p) = logsumexp(other logits) - logsumexp(all logits).
    - SoftDice (Milletari et al. 2016, https://arxiv.org/abs/1606.04797):
      1 - (2 TP + s) / (2 TP + FP + FN + s).
    - FocalTversky (Abraham & Khan 2019, https://arxiv.org/abs/1810.07842): TI = (TP + s) /
      (TP + alpha FN + beta FP + s), term (1 - TI)^gamma (the exponent is gamma, see module doc).

    Smoothing: with an empty target and an empty prediction TP = FP = FN = 0, so Dice = 1 - s/s = 0
    and TI = 1 (term 0). With s = 1e-5 this only holds while the soft false positives stay far below
    s; a handful of uncertain pixels (sum p >> s) already pushes the Dice and Tversky terms towards 1
    on an empty target. Batch-level counts (``batch_dice=True``, nnU-Net's default for 2D) make
    all-empty targets rare.

    Args:
        weight_bce: weight of the BCE term.
        weight_dice: weight of the soft Dice term.
        weight_tversky: weight of the Focal Tversky term.
        alpha: Tversky weight of false negatives (0.7 in SAM2LoRA).
        beta: Tversky weight of false positives (0.3 in SAM2LoRA).
        gamma: Focal Tversky exponent, applied as (1 - TI)^gamma (0.75 in SAM2LoRA).
        smooth: added to numerator and denominator of Dice and TI.
        ignore_label: target value whose pixels contribute nothing to any term (nnU-Net's
            ``label_manager.ignore_label``), or None.
        batch_dice: soft counts summed over the whole batch (True) or per sample and then averaged
            (False), as nnU-Net's ``configuration_manager.batch_dice``.
        ddp: with ``batch_dice``, the soft counts are also summed over the batches of all DDP
            ranks (nnU-Net's ``ddp=self.is_ddp``), so Dice and Focal Tversky see the global batch
            as on one GPU. BCE stays a per-rank mean, as nnU-Net's cross-entropy: DDP's gradient
            averaging makes it the global mean when the ranks hold equally many valid pixels.
    """

    def __init__(
        self,
        *,
        weight_bce: float = 1.0,
        weight_dice: float = 1.0,
        weight_tversky: float = 1.0,
        alpha: float = 0.7,
        beta: float = 0.3,
        gamma: float = 0.75,
        smooth: float = 1e-5,
        ignore_label: Optional[int] = None,
        batch_dice: bool = True,
        ddp: bool = False,
    ):
        super().__init__()
        if min(weight_bce, weight_dice, weight_tversky, alpha, beta, smooth) < 0 or gamma <= 0:
            raise ValueError("weights, alpha, beta and smooth must be >= 0 and gamma > 0")
        self.weight_bce = weight_bce
        self.weight_dice = weight_dice
        self.weight_tversky = weight_tversky
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.smooth = smooth
        self.ignore_label = ignore_label
        self.batch_dice = batch_dice
        self.ddp = ddp

    def extra_repr(self) -> str:
        return (f"weights=({self.weight_bce}, {self.weight_dice}, {self.weight_tversky}), "
                f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, smooth={self.smooth}, "
                f"ignore_label={self.ignore_label}, batch_dice={self.batch_dice}, ddp={self.ddp}")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the three terms; logits (B, K, *S), target (B, 1, *S)."""
        terms = self.terms(logits, target)
        return (self.weight_bce * terms["bce"] + self.weight_dice * terms["dice"]
                + self.weight_tversky * terms["tversky"])

    def terms(self, logits: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The unweighted terms ``{"bce", "dice", "tversky"}``, each a scalar tensor.

        Args:
            logits: (B, K, H, W) or (B, K, D, H, W) raw scores, K >= 2 classes incl. background.
            target: (B, 1, *S) (or (B, *S)) tensor of integer label values, any dtype.
        """
        logits, target = _check_shapes(logits, target)
        valid = _valid_mask(target, self.ignore_label)  # (B, *S) bool
        onehot = _foreground_onehot(target, logits.shape[1], valid)  # (B, K-1, *S)
        log_p, log_1mp = _log_probs_one_vs_rest(logits)  # (B, K-1, *S) each
        bce = _masked_bce(log_p, log_1mp, onehot, valid)
        tp, fp, fn = _soft_counts(log_p.exp(), onehot, valid, self.batch_dice)
        if self.ddp and self.batch_dice:
            tp, fp, fn = _sum_over_ranks(torch.stack((tp, fp, fn)))  # one all-gather, not three
        dice = 1 - (2 * tp + self.smooth) / (2 * tp + fp + fn + self.smooth)
        ti = (tp + self.smooth) / (tp + self.alpha * fn + self.beta * fp + self.smooth)
        tversky = (1 - ti).clamp_min(_FOCAL_EPS) ** self.gamma
        return {"bce": bce, "dice": dice.mean(), "tversky": tversky.mean()}


def _check_shapes(logits: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    if logits.ndim not in (4, 5):
        raise ValueError(f"logits must be (B, K, H, W) or (B, K, D, H, W), got {tuple(logits.shape)}")
    if logits.shape[1] < 2:
        raise ValueError(f"CompositeLoss needs K >= 2 softmax channels (background + foreground), "
                         f"got K = {logits.shape[1]}")
    if target.ndim == logits.ndim - 1:
        target = target.unsqueeze(1)  # (B, *S) -> (B, 1, *S)
    if target.shape[1] != 1 or target.shape[0] != logits.shape[0] or target.shape[2:] != logits.shape[2:]:
        raise ValueError(f"target must be (B, 1, *S) matching logits {tuple(logits.shape)}, "
                         f"got {tuple(target.shape)}")
    # bf16/fp16 autocast: the log-sum-exps and soft counts are computed in float32
    return logits.float(), target[:, 0].round().long()  # target (B, 1, *S) -> (B, *S)


def _valid_mask(target: torch.Tensor, ignore_label: Optional[int]) -> torch.Tensor:
    if ignore_label is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != ignore_label


def _foreground_onehot(target: torch.Tensor, num_classes: int, valid: torch.Tensor) -> torch.Tensor:
    """(B, *S) labels -> (B, K-1, *S) float one-hot of classes 1..K-1, zero at ignored pixels."""
    classes = torch.arange(1, num_classes, device=target.device)
    classes = classes.view(1, -1, *([1] * (target.ndim - 1)))  # (1, K-1, 1, ...)
    return ((target.unsqueeze(1) == classes) & valid.unsqueeze(1)).float()


def _log_probs_one_vs_rest(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """log p_k and log(1 - p_k) for k = 1..K-1, both (B, K-1, *S), without log(0)."""
    lse_all = torch.logsumexp(logits, dim=1)  # (B, *S)
    num_classes = logits.shape[1]
    log_p = logits[:, 1:] - lse_all.unsqueeze(1)
    log_1mp = []
    for k in range(1, num_classes):
        others = [j for j in range(num_classes) if j != k]
        log_1mp.append(torch.logsumexp(logits[:, others], dim=1) - lse_all)  # (B, *S)
    return log_p, torch.stack(log_1mp, dim=1)


def _masked_bce(log_p: torch.Tensor, log_1mp: torch.Tensor, onehot: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid pixels and foreground classes of -(t log p + (1 - t) log(1 - p))."""
    bce = -(onehot * log_p + (1 - onehot) * log_1mp)  # (B, K-1, *S)
    valid = valid.unsqueeze(1).expand_as(bce)
    bce = torch.where(valid, bce, torch.zeros_like(bce))
    return bce.sum() / valid.sum().clamp_min(1)


def _sum_over_ranks(counts: torch.Tensor) -> torch.Tensor:
    """``counts`` summed over all DDP ranks; gradients flow back to every rank's own counts
    (nnU-Net's AllGatherGrad, as its batch Dice under DDP)."""
    return AllGatherGrad.apply(counts).sum(0)  # (world, 3, K-1) -> (3, K-1)


def _soft_counts(probs: torch.Tensor, onehot: torch.Tensor, valid: torch.Tensor,
                 batch_dice: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft TP, FP, FN: (K-1,) with batch_dice else (B, K-1); ignored pixels excluded."""
    probs = torch.where(valid.unsqueeze(1), probs, torch.zeros_like(probs))  # (B, K-1, *S)
    dims = tuple(range(2, probs.ndim))
    if batch_dice:
        dims = (0,) + dims
    tp = (probs * onehot).sum(dims)
    fp = (probs * (1 - onehot)).sum(dims)
    fn = ((1 - probs) * onehot).sum(dims)
    return tp, fp, fn
