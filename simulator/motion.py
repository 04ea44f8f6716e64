"""Cardiac motion: the contraction curve over the cycle (phase 0 = end-diastole).

The curve scales every moving part of the phantom alike: the radial contraction of
the endocardium and the through-plane descent of the base towards the apex.
"""

from __future__ import annotations

import numpy as np


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def contraction_curve(
    n_phases: int, es_phase: int, ejection_warp: float = 1.0, early_filling: float = 0.0
) -> np.ndarray:
    """Fraction of end-systolic contraction reached in each cardiac phase.

    Systole follows a sin^2 ramp from end-diastole (0) to end-systole (1) over the
    warped time ``(t / es) ** ejection_warp``: below 1 the ventricle empties early
    (hyperdynamic, as in hypertrophy), above 1 late (a failing ventricle).
    Diastole with ``early_filling = 0`` relaxes back along one raised cosine; with
    ``early_filling = e`` in (0, 1) it fills a fraction ``e`` early (the E wave),
    pauses (diastasis) and fills the rest with the atrial kick (the A wave).
    Either way ``es_phase`` is the unique maximum and phase 0 the unique minimum.

    Args:
        n_phases: number of cardiac phases over one R-R interval.
        es_phase: index of end-systole, in ``1..n_phases-1``.
        ejection_warp: systolic time warp exponent (> 0).
        early_filling: fraction of diastolic filling done early, in [0, 1) (0: one
            raised cosine; 1 would leave diastasis at zero, tying with end-diastole).

    Returns:
        ``(phases,)`` float64 values in [0, 1].
    """
    if not 1 <= es_phase < n_phases:
        raise ValueError(f"es_phase must be in 1..{n_phases - 1}, got {es_phase}")
    if not ejection_warp > 0:
        raise ValueError(f"ejection_warp must be > 0, got {ejection_warp}")
    if not 0.0 <= early_filling < 1.0:
        raise ValueError(f"early_filling must be in [0, 1), got {early_filling}")
    t = np.arange(n_phases, dtype=np.float64)
    x = np.clip(t / es_phase, 0.0, 1.0) ** ejection_warp
    systole = np.sin(0.5 * np.pi * x) ** 2
    y = (t - es_phase) / (n_phases - es_phase)
    if early_filling == 0.0:
        diastole = 0.5 * (1.0 + np.cos(np.pi * y))
    else:
        e = early_filling
        diastole = 1.0 - e * _smoothstep(y / 0.4) - (1.0 - e) * _smoothstep((y - 0.75) / 0.25)
    return np.where(t <= es_phase, systole, diastole)
