"""Noise prewhitening math against NumPy references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kmtr_stream.kspace.prewhitening import (
    apply_prewhitening,
    bandwidth_scale,
    covariance_sum,
    noise_covariance,
    prewhitening_matrix,
)


def _mixing(rng: np.random.Generator, coils: int) -> np.ndarray:
    a = rng.standard_normal((coils, coils)) + 1j * rng.standard_normal((coils, coils))
    return (a + 2.0 * np.eye(coils)).astype(np.complex128)


def _cov(x: np.ndarray) -> np.ndarray:
    """Zero-mean sample covariance ``x x^H / (n - 1)`` in float64 (the reference)."""
    x = x.astype(np.complex128)
    return x @ x.conj().T / (x.shape[1] - 1)


def _noise(rng: np.random.Generator, mix: np.ndarray, n: int) -> np.ndarray:
    c = mix.shape[0]
    white = (rng.standard_normal((c, n)) + 1j * rng.standard_normal((c, n))) / math.sqrt(2)
    return (mix @ white).astype(np.complex64)


@pytest.mark.parametrize("coils", [3, 5, 7])
def test_whitened_noise_has_identity_covariance(coils: int) -> None:
    rng = np.random.default_rng(coils)
    mix = _mixing(rng, coils)
    noise = _noise(rng, mix, 20001)
    cov = noise_covariance(covariance_sum(noise), noise.shape[1])
    np.testing.assert_allclose(cov, _cov(noise), rtol=1e-6, atol=1e-6)
    w = prewhitening_matrix(cov)
    assert w.shape == (coils, coils) and w.dtype == np.complex64
    # On the samples it was estimated from the identity is exact up to rounding ...
    white = apply_prewhitening(w, noise)
    np.testing.assert_allclose(_cov(white), np.eye(coils), atol=2e-4)
    # ... and on fresh noise of the same receiver it holds statistically.
    fresh = apply_prewhitening(w, _noise(rng, mix, 20001))
    np.testing.assert_allclose(_cov(fresh), np.eye(coils), atol=0.05)


@pytest.mark.parametrize("coils", [3, 5, 7])
def test_prewhitener_is_inverse_cholesky(coils: int) -> None:
    rng = np.random.default_rng(10 + coils)
    mix = _mixing(rng, coils)
    cov = mix @ mix.conj().T
    w = prewhitening_matrix(cov, scale=1.5).astype(np.complex128)
    # W^H W = s^2 inv(C) characterises any whitener; lower-triangular makes it inv(chol).
    np.testing.assert_allclose(w.conj().T @ w, 2.25 * np.linalg.inv(cov), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.triu(w, 1), 0.0, atol=1e-6)


def test_accumulated_covariance_equals_batch() -> None:
    rng = np.random.default_rng(3)
    noise = _noise(rng, _mixing(rng, 5), 3 * 97)
    parts = sum(covariance_sum(noise[:, i * 97 : (i + 1) * 97]) for i in range(3))
    np.testing.assert_allclose(parts, covariance_sum(noise), rtol=1e-10)


def test_bandwidth_scale_follows_gadgetron() -> None:
    # Gadgetron: sqrt(2 * acq_dwell / noise_dwell * rnbw) with the factor 2 as complex_variance.
    assert bandwidth_scale(5.0, 2.5, 0.793, complex_variance=2.0) == pytest.approx(
        math.sqrt(2.0 * 2.5 / 5.0 * 0.793)
    )
    assert bandwidth_scale(2.0, 4.0, 1.0) == pytest.approx(math.sqrt(2.0))
    assert bandwidth_scale(0.0, 4.0) == 1.0
    assert bandwidth_scale(2.0, 0.0) == 1.0


def test_not_positive_definite_is_named() -> None:
    cov = np.diag([1.0, 0.0, 1.0]).astype(np.complex128)
    with pytest.raises(ValueError, match="3 coils is not positive definite"):
        prewhitening_matrix(cov)


def test_too_few_noise_samples() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        noise_covariance(np.eye(2), 1)
