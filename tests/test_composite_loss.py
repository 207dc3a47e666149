"""CompositeLoss (BCE + SoftDice + FocalTversky) on hand-computable inputs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnsam2.losses import CompositeLoss

BIG = 30.0  # logit margin that makes softmax probabilities 0/1 up to ~1e-26


def _confident_logits(labels: torch.Tensor, num_classes: int, margin: float = BIG) -> torch.Tensor:
    """(B, 1, *S) labels -> (B, K, *S) logits with `margin` on the given class."""
    onehot = F.one_hot(labels[:, 0].long(), num_classes)  # (B, *S, K)
    onehot = onehot.movedim(-1, 1).float()  # (B, *S, K) -> (B, K, *S)
    return margin * (2 * onehot - 1)


def _random_labels(shape, num_classes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, shape, generator=gen).float()


def test_perfect_prediction_gives_zero_loss():
    target = _random_labels((2, 1, 8, 8), 3)
    logits = _confident_logits(target, 3)
    terms = CompositeLoss().terms(logits, target)
    for name, value in terms.items():
        assert value.item() == pytest.approx(0.0, abs=1e-3), name
    assert CompositeLoss()(logits, target).item() == pytest.approx(0.0, abs=3e-3)


def test_all_wrong_prediction_gives_maximal_terms():
    target = _random_labels((2, 1, 8, 8), 2)
    target[0, 0, 0, 0], target[0, 0, 0, 1] = 0, 1  # both classes present
    logits = _confident_logits(1 - target, 2)
    terms = CompositeLoss().terms(logits, target)
    assert terms["bce"].item() == pytest.approx(2 * BIG, rel=1e-3)  # -log p = 2 * margin
    assert terms["dice"].item() == pytest.approx(1.0, abs=1e-6)
    assert terms["tversky"].item() == pytest.approx(1.0, abs=1e-6)


def test_empty_target_with_empty_prediction_is_small():
    target = torch.zeros(1, 1, 8, 8)
    logits = _confident_logits(target, 2)
    terms = CompositeLoss().terms(logits, target)
    assert all(v.item() < 1e-3 for v in terms.values()), terms


def test_empty_target_with_soft_false_positives_saturates_dice():
    # documented smoothing behaviour: sum p >> smooth on an empty target -> Dice and Tversky ~ 1
    target = torch.zeros(1, 1, 8, 8)
    logits = torch.zeros(1, 2, 8, 8)
    logits[:, 1] = -np.log(9.0)  # p_fg = 0.1 everywhere, soft FP = 6.4
    terms = CompositeLoss().terms(logits, target)
    assert terms["dice"].item() == pytest.approx(1.0, abs=1e-5)
    assert terms["tversky"].item() == pytest.approx(1.0, abs=1e-5)
    assert terms["bce"].item() == pytest.approx(-np.log(0.9), rel=1e-5)


def _numpy_composite(z: np.ndarray, t: np.ndarray, alpha=0.7, beta=0.3, gamma=0.75, s=1e-5):
    """Binary reference with p = sigmoid(z) (softmax of (0, z))."""
    p = 1 / (1 + np.exp(-z))
    bce = np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))
    tp, fp, fn = np.sum(p * t), np.sum(p * (1 - t)), np.sum((1 - p) * t)
    dice = 1 - (2 * tp + s) / (2 * tp + fp + fn + s)
    ti = (tp + s) / (tp + alpha * fn + beta * fp + s)
    return bce, dice, (1 - ti) ** gamma


def test_hand_computed_2x2_binary_example():
    z = np.array([[2.0, -1.0], [0.5, -3.0]])
    t = np.array([[1.0, 0.0], [1.0, 1.0]])
    logits = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    logits[0, 1] = torch.from_numpy(z)  # background logit 0 -> p_fg = sigmoid(z)
    target = torch.from_numpy(t)[None, None]
    terms = CompositeLoss().terms(logits, target)
    bce, dice, tversky = _numpy_composite(z, t)
    assert terms["bce"].item() == pytest.approx(bce, rel=1e-6)
    assert terms["dice"].item() == pytest.approx(dice, rel=1e-6)
    assert terms["tversky"].item() == pytest.approx(tversky, rel=1e-6)
    total = CompositeLoss(weight_bce=0.5, weight_dice=2.0, weight_tversky=3.0)(logits, target)
    assert total.item() == pytest.approx(0.5 * bce + 2 * dice + 3 * tversky, rel=1e-6)


def test_bce_only_weights_match_torch_bce():
    target = _random_labels((2, 1, 6, 6), 2, seed=1)
    logits = torch.randn(2, 2, 6, 6, generator=torch.Generator().manual_seed(2))
    loss = CompositeLoss(weight_bce=1.0, weight_dice=0.0, weight_tversky=0.0)(logits, target)
    ref = F.binary_cross_entropy_with_logits(logits[:, 1] - logits[:, 0], target[:, 0])
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert loss.item() == pytest.approx(CompositeLoss().terms(logits, target)["bce"].item())


def test_multiclass_is_mean_of_one_vs_rest():
    target = _random_labels((2, 1, 5, 5), 3, seed=3)
    logits = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    probs = torch.softmax(logits, 1).numpy()
    terms = CompositeLoss().terms(logits, target)
    ref = [_numpy_composite(np.log(probs[:, k] / (1 - probs[:, k])), (target[:, 0] == k).numpy())
           for k in (1, 2)]
    for i, name in enumerate(("bce", "dice", "tversky")):
        assert terms[name].item() == pytest.approx(np.mean([r[i] for r in ref]), rel=1e-6), name


def test_ignore_label_pixels_have_no_effect_and_no_gradient():
    target = _random_labels((2, 1, 8, 8), 3, seed=5)
    target[:, :, :3] = 3  # ignore label = 3 (nnU-Net: the highest label, not a network output)
    ignored = (target == 3).expand(2, 3, 8, 8)
    logits = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    changed = torch.where(ignored, 100 * torch.randn_like(logits), logits)
    loss_fn = CompositeLoss(ignore_label=3)
    a, b = loss_fn(logits, target), loss_fn(changed, target)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)
    changed.requires_grad_(True)
    loss_fn(changed, target).backward()
    assert torch.all(changed.grad[ignored] == 0)
    assert changed.grad[~ignored].abs().sum() > 0


def test_ignore_label_bce_is_mean_over_valid_pixels_only():
    target = torch.tensor([[[[1.0, 0.0], [2.0, 2.0]]]])  # bottom row ignored
    logits = torch.zeros(1, 2, 2, 2)  # p = 0.5 everywhere
    terms = CompositeLoss(ignore_label=2).terms(logits, target)
    assert terms["bce"].item() == pytest.approx(np.log(2), rel=1e-6)
    assert terms["dice"].item() == pytest.approx(0.5, rel=1e-4)  # TP .5, FP .5, FN .5


def test_gradient_reaches_background_channel():
    target = _random_labels((1, 1, 6, 6), 2, seed=7)
    logits = torch.randn(1, 2, 6, 6, requires_grad=True)
    CompositeLoss()(logits, target).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[:, 0].abs().sum() > 0


def test_3d_input_and_per_sample_dice():
    target = _random_labels((2, 1, 3, 4, 4), 3, seed=8)
    logits = torch.randn(2, 3, 3, 4, 4, requires_grad=True)
    loss_fn = CompositeLoss(batch_dice=False)
    loss = loss_fn(logits, target)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # per-sample counts: each sample has the same number of pixels, so everything averages
    per_sample = [loss_fn(logits[i:i + 1], target[i:i + 1]) for i in range(2)]
    assert loss.item() == pytest.approx(torch.stack(per_sample).mean().item(), rel=1e-5)


def test_perfect_prediction_has_finite_gradient():
    target = _random_labels((1, 1, 4, 4), 2, seed=9)
    logits = _confident_logits(target, 2).requires_grad_(True)
    CompositeLoss()(logits, target).backward()
    assert torch.isfinite(logits.grad).all()


def test_bf16_logits_give_float32_loss():
    target = _random_labels((1, 1, 4, 4), 2)
    loss = CompositeLoss()(torch.randn(1, 2, 4, 4).bfloat16(), target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize("logits_shape, target_shape", [
    ((1, 1, 4, 4), (1, 1, 4, 4)),  # K = 1
    ((1, 2, 4), (1, 1, 4)),  # 1D
    ((1, 2, 4, 4), (1, 1, 4, 5)),  # spatial mismatch
])
def test_bad_shapes_raise(logits_shape, target_shape):
    with pytest.raises(ValueError):
        CompositeLoss()(torch.zeros(logits_shape), torch.zeros(target_shape))
