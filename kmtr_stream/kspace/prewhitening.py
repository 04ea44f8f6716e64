"""Noise prewhitening (pure math), equivalent to Gadgetron's NoiseAdjustGadget.

Model: receiver noise ``n`` of shape ``(coils,)`` per sample has covariance
``C = E[n n^H]``. With the lower Cholesky factor ``C = L L^H`` the prewhitener
``W = L^{-1}`` gives ``E[(W n)(W n)^H] = I``: whitened channels are
uncorrelated with unit variance.

Bandwidth scaling (Gadgetron convention, documented here because the factor
is easy to get wrong): the noise scan is usually sampled with a different
dwell time than the imaging readouts, and noise variance per sample scales
with the receiver bandwidth, i.e. with ``1 / dwell``. Gadgetron multiplies
the prewhitener by ``sqrt(2 * acq_dwell / noise_dwell * rnbw)`` where
``rnbw`` is ``acquisitionSystemInformation.relativeReceiverNoiseBandwidth``
from the XML header (0.793 when absent: the effective noise bandwidth of
the receiver's anti-alias filter relative to the nominal sampling bandwidth),
and the factor 2 makes each of the real and imaginary parts unit-variance.
``bandwidth_scale`` takes that factor 2 as ``complex_variance`` (1.0 here by
default so whitened complex samples have unit variance; 2.0 reproduces
Gadgetron's numbers exactly).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kmtr_stream.kspace.xp import get_array_module

#: Gadgetron's default relative receiver noise bandwidth when the header has none.
DEFAULT_RECEIVER_NOISE_BANDWIDTH = 0.793


def covariance_sum(noise: Any) -> Any:
    """Unnormalised noise covariance ``sum_t n_t n_t^H`` of one noise readout.

    Args:
        noise: ``(coils, samples)`` complex noise samples.

    Returns:
        ``(coils, coils)`` complex128 sum of outer products (accumulate across
        readouts, then divide by the sample count with ``noise_covariance``).
    """
    xp = get_array_module(noise)
    n = noise.astype(xp.complex128)
    return n @ n.conj().T


def noise_covariance(cov_sum: Any, n_samples: int) -> Any:
    """Sample covariance ``(coils, coils)`` from an accumulated sum over ``n_samples``.

    Uses the unbiased ``n_samples - 1`` denominator as Gadgetron does (zero mean assumed).
    """
    if n_samples < 2:
        raise ValueError(f"need at least 2 noise samples for a covariance, got {n_samples}")
    return cov_sum / float(n_samples - 1)


def prewhitening_matrix(cov: Any, scale: float = 1.0) -> Any:
    """Prewhitener ``W = scale * inv(L)`` with ``cov = L L^H`` (lower Cholesky).

    Args:
        cov: ``(coils, coils)`` Hermitian positive-definite noise covariance.
        scale: bandwidth scale (``bandwidth_scale``), 1.0 for none.

    Returns:
        ``(coils, coils)`` complex64 ``W``; whitened data = ``W @ data`` for
        ``(coils, samples)`` data. ``W @ cov @ W^H = scale**2 * I``.

    Raises:
        ValueError: ``cov`` is not positive definite (e.g. a dead channel).
    """
    xp = get_array_module(cov)
    c = cov.astype(xp.complex128)
    n = c.shape[0]
    try:
        low = xp.linalg.cholesky(c)
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"noise covariance of {n} coils is not positive definite") from exc
    if not bool(xp.all(xp.isfinite(low))):
        # CuPy reports a failed factorisation as NaNs rather than an exception.
        raise ValueError(f"noise covariance of {n} coils is not positive definite")
    inv_low = xp.linalg.solve(low, xp.eye(n, dtype=xp.complex128))
    return (scale * inv_low).astype(xp.complex64)


def bandwidth_scale(
    noise_dwell_time_us: float,
    acq_dwell_time_us: float,
    receiver_noise_bandwidth: float = DEFAULT_RECEIVER_NOISE_BANDWIDTH,
    complex_variance: float = 1.0,
) -> float:
    """Prewhitener scale ``sqrt(complex_variance * acq_dwell / noise_dwell * rnbw)``.

    Returns 1.0 when either dwell time is unknown (zero), as Gadgetron does.
    """
    if noise_dwell_time_us <= 0.0 or acq_dwell_time_us <= 0.0:
        return 1.0
    return math.sqrt(
        complex_variance * acq_dwell_time_us / noise_dwell_time_us * receiver_noise_bandwidth
    )


def apply_prewhitening(matrix: Any, data: Any) -> Any:
    """Whiten ``(coils, samples)`` complex64 data with a ``(coils, coils)`` prewhitener."""
    return matrix @ data
