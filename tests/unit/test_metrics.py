"""Evaluation metrics against hand-computed values and brute-force references."""

from __future__ import annotations

import numpy as np
import pytest

from kmtr_stream.metrics import (
    binary_auc,
    dice_per_class,
    expected_calibration_error,
    hd95,
    hd95_per_class,
    macro_auc_ovr,
    mae_rmse,
)
from kmtr_stream.training.calibration import fit_temperature, nll


def _auc_pairs(scores: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = scores[positive], scores[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


@pytest.mark.parametrize("n", [2, 7, 31, 200])
def test_binary_auc_matches_pair_count_with_ties(n: int) -> None:
    rng = np.random.default_rng(n)
    scores = rng.integers(0, 5, n).astype(float)  # many ties
    positive = rng.random(n) < 0.4
    positive[0], positive[-1] = True, False
    assert binary_auc(scores, positive) == pytest.approx(_auc_pairs(scores, positive))


def test_binary_auc_hand_values() -> None:
    assert binary_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1], bool)) == 1.0
    assert binary_auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1], bool)) == 0.0
    # one of four pairs inverted
    assert binary_auc(np.array([0.1, 0.5, 0.4, 0.9]), np.array([0, 0, 1, 1], bool)) == 0.75
    assert np.isnan(binary_auc(np.array([0.1, 0.2]), np.array([1, 1], bool)))


def test_macro_auc_ovr_is_mean_of_class_aucs() -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(5), size=40)
    targets = rng.integers(0, 5, 40)
    ref = np.mean([_auc_pairs(probs[:, c], targets == c) for c in range(5)])
    assert macro_auc_ovr(probs, targets) == pytest.approx(ref)


def test_dice_hand_computed() -> None:
    pred = np.zeros((1, 2, 4, 4), np.int64)
    target = np.zeros_like(pred)
    pred[0, 0, :2, :2] = 2  # 4 voxels
    target[0, 0, :2, :3] = 2  # 6 voxels, overlap 4
    pred[0, 1, 0, 0] = 1  # class 1 only in pred -> Dice 0
    dice = dice_per_class(pred, target, 4)
    assert dice[0, 1] == pytest.approx(2 * 4 / 10)
    assert dice[0, 0] == 0.0
    assert np.isnan(dice[0, 2])  # class 3 absent in both


def test_hd95_hand_computed() -> None:
    a = np.zeros((1, 1, 8), bool)
    b = np.zeros((1, 1, 8), bool)
    a[0, 0, 0] = True
    b[0, 0, 3] = True
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(3.0)
    assert hd95(a, b, (10.0, 2.0, 0.5)) == pytest.approx(1.5)  # x spacing 0.5 mm
    b[0, 0, 0] = True
    b[0, 0, 3] = False
    b[0, 0, 4] = True
    # distances pooled: a->b [0], b->a [0, 4]; 95th percentile of [0, 0, 4] = 3.6
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(3.6)
    assert np.isnan(hd95(a, np.zeros_like(a), (1.0, 1.0, 1.0)))


def test_hd95_identical_and_shifted_squares() -> None:
    a = np.zeros((3, 9, 9), bool)
    a[1, 2:6, 2:6] = True
    assert hd95(a, a, (10.0, 1.0, 1.0)) == 0.0
    b = np.roll(a, 2, axis=2)  # shifted two columns
    # every surface point is at most 2 voxels from the other surface; most are exactly 2 or 0
    value = hd95(a, b, (10.0, 1.0, 1.0))
    assert 1.0 <= value <= 2.0


def test_hd95_per_class_averages_phases() -> None:
    pred = np.zeros((1, 2, 1, 1, 8), np.int64)
    target = np.zeros_like(pred)
    pred[0, 0, 0, 0, 0] = 3
    target[0, 0, 0, 0, 2] = 3
    pred[0, 1, 0, 0, 0] = 3
    target[0, 1, 0, 0, 4] = 3
    out = hd95_per_class(pred, target, 4, (1.0, 1.0, 1.0))
    assert out[0, 2] == pytest.approx(3.0)
    assert np.isnan(out[0, 0])


def test_mae_rmse_hand_computed() -> None:
    mae, rmse = mae_rmse(np.array([[1.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(mae, [2.0, 2.0])
    np.testing.assert_allclose(rmse, [np.sqrt(5.0), np.sqrt(8.0)])


def test_ece_hand_computed() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    targets = np.array([0, 1, 0, 1])
    # bins: conf 0.9 (2 samples, acc 0.5): gap 0.4; conf 0.6 (acc 1): 0.4; conf 0.7 (acc 1): 0.3
    expected = 0.5 * 0.4 + 0.25 * 0.4 + 0.25 * 0.3
    assert expected_calibration_error(probs, targets, n_bins=10) == pytest.approx(expected)


def test_temperature_fit_lowers_nll_of_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 5, 300)
    logits = rng.normal(size=(300, 5))
    logits[np.arange(300), targets] += 1.0
    logits *= 6.0  # overconfident
    t = fit_temperature(logits, targets)
    assert t > 2.0
    assert nll(logits, targets, t) < nll(logits, targets, 1.0)
