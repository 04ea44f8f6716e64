"""Coil compression by SVD/PCA across receiver channels (pure math)."""

from __future__ import annotations

from typing import Any

import numpy as np


def compression_matrix(calib: Any, n_virtual: int, xp: Any = np) -> Any:
    """Compression matrix from calibration samples.

    Args:
        calib: ``(coils, ...)`` complex k-space samples (any trailing shape).
        n_virtual: number of virtual coils to keep (<= coils).
        xp: array module (numpy or cupy) that ``calib`` lives in.

    Returns:
        ``(n_virtual, coils)`` complex64 matrix ``A``; virtual data = ``A @ data``.
        Rows are ordered by decreasing energy.
    """
    n_coils = calib.shape[0]
    if not 1 <= n_virtual <= n_coils:
        raise ValueError(f"n_virtual must be in 1..{n_coils}, got {n_virtual}")
    samples = calib.reshape(n_coils, -1)
    # Left singular vectors of the (coils x samples) matrix = eigenvectors of the coil covariance.
    u, _, _ = xp.linalg.svd(samples, full_matrices=False)
    return u[:, :n_virtual].conj().T.astype(xp.complex64)


def energy_fraction(calib: Any, n_virtual: int, xp: Any = np) -> float:
    """Fraction of the calibration energy kept by ``n_virtual`` virtual coils."""
    n_coils = calib.shape[0]
    s = xp.linalg.svd(calib.reshape(n_coils, -1), compute_uv=False)
    e = s.astype(xp.float64) ** 2
    return float(e[:n_virtual].sum() / e.sum())


def apply_compression(matrix: Any, data: Any) -> Any:
    """Apply a ``(n_virtual, coils)`` matrix to ``(coils, ...)`` data -> ``(n_virtual, ...)``."""
    shape = data.shape
    out = matrix @ data.reshape(shape[0], -1)
    return out.reshape((matrix.shape[0], *shape[1:]))
