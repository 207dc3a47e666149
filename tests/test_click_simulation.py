"""Simulated clicks: next_click geometry (2D, 3D, border, spacing), training click sampling,
the error click, Dice per class and NoC@Dice."""
import math

import numpy as np
import pytest
from scipy import ndimage

from nnsam2.interactive.click_simulation import (clicks_to_reach, dice_per_class, error_click,
                                                 mean_dice, next_click, sample_training_clicks)


# ----------------------------------------------------------------------------- next_click

def test_next_click_2d_picks_centre_of_largest_error():
    reference = np.zeros((30, 30), int)
    reference[5:14, 5:14] = 2                     # 9x9 square, centre (9, 9), missed
    prediction = np.zeros_like(reference)
    prediction[20:22, 20:22] = 1                  # small false positive elsewhere
    assert next_click(prediction, reference) == (2, (9, 9))


def test_next_click_false_positive_gives_background_click():
    reference = np.zeros((20, 20), int)
    prediction = reference.copy()
    prediction[3:8, 10:15] = 1
    assert next_click(prediction, reference) == (0, (5, 12))


def test_next_click_3d_box():
    reference = np.zeros((10, 15, 20), int)
    reference[1:8, 3:10, 10:17] = 1               # 7x7x7 box, centre (4, 6, 13)
    prediction = np.zeros_like(reference)
    prediction[8, 0, 0] = 3
    click = next_click(prediction, reference)
    assert click == (1, (4, 6, 13))
    assert all(isinstance(i, int) for i in click[1])


def test_next_click_no_error_is_none():
    a = np.random.default_rng(0).integers(0, 3, (6, 7, 8))
    assert next_click(a, a.copy()) is None


def test_next_click_region_on_array_border_is_clicked_inside():
    reference = np.zeros((20, 20), int)
    reference[:7, :7] = 1                         # touches two array borders
    prediction = np.zeros_like(reference)
    assert next_click(prediction, reference) == (1, (3, 3))


def test_next_click_full_connectivity_merges_diagonal_touches():
    reference = np.zeros((20, 20), int)
    reference[0:3, 0:3] = 1                       # two 3x3 squares touching at a corner: 18 voxels
    reference[3:6, 3:6] = 1
    reference[10:14, 10:14] = 2                   # one 4x4 square: 16 voxels
    click = next_click(np.zeros_like(reference), reference)
    assert click == (1, (1, 1))                   # merged region wins; tie -> first in C order


def test_next_click_spacing_reaches_distance_transform():
    reference = np.zeros((9, 9, 9), int)
    reference[1:8, 3:6, 3:6] = 1                  # 7 slices of a 3x3 column
    prediction = np.zeros_like(reference)
    # Isotropic: every slice 1..5 of the column is 2 voxels from the border -> first, z = 2.
    assert next_click(prediction, reference) == (1, (2, 4, 4))
    # Thin slices: the distance along z dominates only at the middle slice.
    assert next_click(prediction, reference, spacing=(0.4, 1.0, 1.0)) == (1, (4, 4, 4))


def test_next_click_shape_mismatch_raises():
    with pytest.raises(ValueError):
        next_click(np.zeros((3, 3)), np.zeros((3, 4)))


# ----------------------------------------------------------------------------- training clicks

def _patch():
    t = np.zeros((64, 64), int)
    yy, xx = np.mgrid[:64, :64]
    t[(yy - 20) ** 2 + (xx - 22) ** 2 <= 10 ** 2] = 1     # blob
    t[45:48, 5:60] = 2                                    # thin structure, 3 pixels wide
    t[0:10, 50:64] = 4                                    # ignore label
    return t


def _inner(mask):
    return ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]


def test_training_clicks_follow_the_rules():
    target = _patch()
    ignore = 4
    rng = np.random.default_rng(123)
    band = max(2.0, 0.05 * 64)
    foreground = (target > 0) & (target != ignore)
    to_foreground = ndimage.distance_transform_edt(~foreground)
    inner = {k: _inner(target == k) for k in (1, 2)}
    counts, classes = [], []
    for _ in range(300):
        clicks = sample_training_clicks(target, rng, max_clicks=3, ignore_label=ignore)
        assert clicks.dtype == np.float32 and clicks.shape[1] == 3
        counts.append(len(clicks))
        for cls, y, x in clicks:
            cls, y, x = int(cls), int(y), int(x)
            assert target[y, x] != ignore
            assert target[y, x] == cls
            if cls > 0:
                assert inner[cls][y, x] >= 0.5 * inner[cls].max()
            else:
                assert 1 <= to_foreground[y, x] <= band
            classes.append(cls)
    assert set(counts) == {1, 2, 3}
    assert set(classes) == {0, 1, 2}
    positive_share = np.mean(np.array(classes) > 0)
    assert 0.4 < positive_share < 0.6


def test_training_clicks_thin_structure_on_centre_line():
    target = np.zeros((32, 32), int)
    target[10:15, 2:30] = 1                       # 5 pixels wide: centre rows 11..13 qualify
    rng = np.random.default_rng(0)
    ys = [int(y) for _ in range(200)
          for c, y, _ in sample_training_clicks(target, rng) if c == 1]
    assert ys and set(ys) <= {11, 12, 13}


def test_training_clicks_pure_background_and_all_ignored():
    rng = np.random.default_rng(1)
    background = np.zeros((16, 16), int)
    for _ in range(50):
        clicks = sample_training_clicks(background, rng, max_clicks=4)
        assert 1 <= len(clicks) <= 4 and (clicks[:, 0] == 0).all()
    ignored = np.full((16, 16), 7)
    assert sample_training_clicks(ignored, rng, ignore_label=7).shape == (0, 3)


def test_training_clicks_without_background_are_positive():
    target = np.ones((16, 16), int)
    target[:, :4] = 5                             # only ignore and foreground, no background
    rng = np.random.default_rng(2)
    for _ in range(30):
        clicks = sample_training_clicks(target, rng, ignore_label=5)
        assert (clicks[:, 0] == 1).all()


def test_training_clicks_are_seeded():
    target = np.zeros((256, 256), int)
    yy, xx = np.mgrid[:256, :256]
    target[(yy - 100) ** 2 + (xx - 120) ** 2 < 40 ** 2] = 1
    target[200:204, 20:230] = 2
    a = [sample_training_clicks(target, np.random.default_rng(5)) for _ in range(3)]
    assert all(np.array_equal(a[0], b) for b in a)


# ----------------------------------------------------------------------------- error click

def test_error_click_row_and_none():
    target = np.zeros((20, 20), int)
    target[2:7, 2:7] = 3
    row = error_click(np.zeros_like(target), target)
    assert row.dtype == np.float32
    np.testing.assert_array_equal(row, [[3, 4, 4]])
    assert error_click(target, target.copy()) is None
    with pytest.raises(ValueError):
        error_click(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))


# ----------------------------------------------------------------------------- Dice and NoC

def test_dice_per_class_hand_computed():
    reference = np.array([[1, 1, 0], [2, 0, 0], [0, 0, 0]])
    prediction = np.array([[1, 0, 0], [2, 2, 2], [0, 0, 0]])
    d = dice_per_class(prediction, reference, [1, 2, 3])
    assert d[1] == pytest.approx(2 / 3)           # tp 1, fn 1
    assert d[2] == pytest.approx(0.5)             # tp 1, fp 2
    assert math.isnan(d[3])                       # absent in both
    assert mean_dice(prediction, reference, [1, 2, 3]) == pytest.approx((2 / 3 + 0.5) / 2)
    assert math.isnan(mean_dice(prediction, reference, [3]))


def test_clicks_to_reach():
    assert clicks_to_reach([0.5, 0.8, 0.92, 0.95], 0.9, 3) == 2
    assert clicks_to_reach([0.95, 0.8], 0.9, 1) == 0
    assert clicks_to_reach([0.5, 0.6, 0.7], 0.9, 5) == 5
    assert clicks_to_reach([0.1, 0.2, 0.95], 0.9, 1) == 1   # beyond the budget does not count
