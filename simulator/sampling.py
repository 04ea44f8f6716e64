"""Cartesian undersampling masks and line orderings (pure math).

Accelerations are nominal: ``round(n_ky / accel)`` lines are aimed at, and the
fully sampled calibration region is always acquired on top (equispaced) or
counted in (variable density).
"""

from __future__ import annotations

import numpy as np

from kmtr_stream.errors import ConfigError
from simulator.config import ORDERINGS
from simulator.kspace import calibration_slice


def _check(n_ky: int, accel: int, n_calib: int) -> None:
    if n_ky < 1:
        raise ConfigError(f"n_ky must be >= 1, got {n_ky}")
    if not 2 <= accel <= 12:
        raise ConfigError(f"acceleration must be in 2..12, got {accel}")
    if not 0 <= n_calib <= n_ky:
        raise ConfigError(f"n_calib must be in 0..{n_ky}, got {n_calib}")


def calibration_mask(n_ky: int, n_calib: int) -> np.ndarray:
    """``(ky,)`` bool mask of the centred calibration lines."""
    mask = np.zeros(n_ky, dtype=bool)
    mask[calibration_slice(n_ky, n_calib)] = True
    return mask


def equispaced_mask(
    n_ky: int, accel: int, n_calib: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Every ``accel``-th line plus a fully sampled centre.

    Args:
        n_ky: phase-encoding lines.
        accel: acceleration factor (2..12).
        n_calib: calibration lines at the centre.
        rng: draws the offset of the regular pattern (0 when None).

    Returns:
        ``(ky,)`` bool mask.
    """
    _check(n_ky, accel, n_calib)
    offset = int(rng.integers(accel)) if rng is not None else 0
    mask = calibration_mask(n_ky, n_calib)
    mask[offset::accel] = True
    return mask


def variable_density_mask(
    n_ky: int, accel: int, n_calib: int, rng: np.random.Generator
) -> np.ndarray:
    """Random lines, denser near the centre, plus a fully sampled centre.

    The outer lines are drawn without replacement with probability falling
    quadratically with distance from the centre, until ``max(round(n_ky / accel),
    n_calib)`` lines are sampled in all.

    Returns:
        ``(ky,)`` bool mask.
    """
    _check(n_ky, accel, n_calib)
    mask = calibration_mask(n_ky, n_calib)
    n_total = max(round(n_ky / accel), n_calib, 1)
    outer = np.flatnonzero(~mask)
    n_more = min(n_total - int(mask.sum()), outer.size)
    if n_more > 0:
        dist = np.abs(outer - n_ky // 2) / max(n_ky / 2, 1)
        w = (1.0 - 0.9 * np.clip(dist, 0.0, 1.0)) ** 2
        mask[rng.choice(outer, size=n_more, replace=False, p=w / w.sum())] = True
    return mask


def line_order(mask: np.ndarray, ordering: str) -> np.ndarray:
    """Acquisition order of the sampled lines.

    Args:
        mask: ``(ky,)`` bool sampling mask.
        ordering: "linear" (ascending ky) or "centre-out" (distance from ky = n_ky // 2,
            the lower line first on ties).

    Returns:
        ``(lines,)`` int64 ky indices in acquisition order.
    """
    if ordering not in ORDERINGS:
        raise ConfigError(f"ordering must be one of {ORDERINGS}, got {ordering!r}")
    lines = np.flatnonzero(np.asarray(mask, dtype=bool)).astype(np.int64)
    if ordering == "linear":
        return lines
    centre = mask.shape[0] // 2
    return lines[np.lexsort((lines, np.abs(lines - centre)))]


def make_mask(
    kind: str, n_ky: int, accel: int, n_calib: int, rng: np.random.Generator
) -> np.ndarray:
    """Mask of ``kind`` ("equispaced" or "variable_density")."""
    if kind == "equispaced":
        return equispaced_mask(n_ky, accel, n_calib, rng)
    if kind == "variable_density":
        return variable_density_mask(n_ky, accel, n_calib, rng)
    raise ConfigError(f"mask kind must be 'equispaced' or 'variable_density', got {kind!r}")
