"""Fitting the temperature of the disease logits on the validation split.

Applying it (``softmax``) belongs to the model: ``kmtr_stream.model.calibration``.
"""

from __future__ import annotations

import numpy as np

from kmtr_stream.model.calibration import softmax


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """Mean NLL of ``targets`` ``(n,)`` under tempered logits ``(n, classes)``."""
    p = softmax(logits, temperature)[np.arange(len(targets)), targets]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature minimising the NLL: coarse log-grid, then a finer grid around the best.

    Args:
        logits: ``(n, classes)`` validation logits.
        targets: ``(n,)`` int class indices.

    Returns:
        Temperature in [0.05, 20].
    """
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
    best = grid[int(np.argmin([nll(logits, targets, t) for t in grid]))]
    fine = best * np.exp(np.linspace(-0.1, 0.1, 41))
    return float(fine[int(np.argmin([nll(logits, targets, t) for t in fine]))])
