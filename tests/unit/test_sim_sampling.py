"""Undersampling masks and line orderings."""

from __future__ import annotations

import numpy as np
import pytest

from kmtr_stream.errors import ConfigError
from simulator.sampling import (
    calibration_mask,
    equispaced_mask,
    line_order,
    variable_density_mask,
)


@pytest.mark.parametrize("n_ky", [64, 63, 37])
@pytest.mark.parametrize("accel", [2, 3, 4, 5, 8, 12])
def test_equispaced(n_ky: int, accel: int) -> None:
    rng = np.random.default_rng(accel)
    mask = equispaced_mask(n_ky, accel, 10, rng)
    assert mask.shape == (n_ky,) and mask.dtype == bool
    calib = calibration_mask(n_ky, 10)
    assert np.all(mask[calib]) and calib.sum() == 10 and calib[n_ky // 2]
    outer = np.flatnonzero(mask & ~calib)
    assert np.all(np.diff(outer) % accel == 0)
    assert mask.sum() <= n_ky // accel + 1 + 10


@pytest.mark.parametrize("accel", [2, 4, 6, 12])
def test_variable_density(accel: int) -> None:
    n_ky, n_calib = 64, 12
    masks = np.stack(
        [variable_density_mask(n_ky, accel, n_calib, np.random.default_rng(i)) for i in range(200)]
    )
    assert np.all(masks[:, calibration_mask(n_ky, n_calib)])
    assert np.all(masks.sum(1) == max(round(n_ky / accel), n_calib))
    freq = masks.mean(0)
    if round(n_ky / accel) > n_calib:  # denser near the centre than at the edge
        assert freq[n_ky // 2 + 8] > freq[1]
    again = variable_density_mask(n_ky, accel, n_calib, np.random.default_rng(3))
    np.testing.assert_array_equal(again, masks[3])


def test_orderings() -> None:
    mask = np.zeros(15, dtype=bool)
    mask[[0, 3, 6, 7, 8, 9, 12]] = True
    np.testing.assert_array_equal(line_order(mask, "linear"), [0, 3, 6, 7, 8, 9, 12])
    np.testing.assert_array_equal(line_order(mask, "centre-out"), [7, 6, 8, 9, 3, 12, 0])
    with pytest.raises(ConfigError):
        line_order(mask, "spiral")


def test_bad_acceleration() -> None:
    with pytest.raises(ConfigError):
        equispaced_mask(64, 1, 12)
    with pytest.raises(ConfigError):
        equispaced_mask(64, 13, 12)
