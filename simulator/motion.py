"""Cardiac motion: the contraction curve over the cycle (phase 0 = end-diastole)."""

from __future__ import annotations

import numpy as np


def contraction_curve(n_phases: int, es_phase: int) -> np.ndarray:
    """Fraction of end-systolic contraction reached in each cardiac phase.

    Systole follows a sin^2 ramp from end-diastole (0) to end-systole (1);
    diastole relaxes back along a raised cosine, so ``es_phase`` is the unique
    maximum and phase 0 the unique minimum.

    Args:
        n_phases: number of cardiac phases over one R-R interval.
        es_phase: index of end-systole, in ``1..n_phases-1``.

    Returns:
        ``(phases,)`` float64 values in [0, 1].
    """
    if not 1 <= es_phase < n_phases:
        raise ValueError(f"es_phase must be in 1..{n_phases - 1}, got {es_phase}")
    t = np.arange(n_phases, dtype=np.float64)
    systole = np.sin(0.5 * np.pi * t / es_phase) ** 2
    diastole = 0.5 * (1.0 + np.cos(np.pi * (t - es_phase) / (n_phases - es_phase)))
    return np.where(t <= es_phase, systole, diastole)
