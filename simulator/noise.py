"""Receiver noise: random coil covariance, correlated noise, prewhitening (pure math)."""

from __future__ import annotations

import numpy as np


def random_covariance(
    n_coils: int, rng: np.random.Generator, correlation: float = 0.3
) -> np.ndarray:
    """A random Hermitian positive-definite coil noise covariance.

    Args:
        n_coils: number of receivers.
        rng: random generator.
        correlation: strength of the off-diagonal coupling (0 = independent coils).

    Returns:
        ``(coils, coils)`` complex128 covariance with mean diagonal 1.
    """
    g = rng.standard_normal((n_coils, n_coils)) + 1j * rng.standard_normal((n_coils, n_coils))
    a = np.eye(n_coils) + correlation * g / np.sqrt(2.0 * n_coils)
    a = a * rng.uniform(0.8, 1.25, n_coils)[:, None]  # unequal receiver gains
    cov = a @ a.conj().T
    return np.asarray(cov / np.mean(np.real(np.diag(cov))))


def complex_normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Circular complex white noise with ``E|z|^2 = 1``, complex64."""
    z = rng.standard_normal((*shape, 2), dtype=np.float32) * np.float32(np.sqrt(0.5))
    return z.view(np.complex64)[..., 0]


def correlated_noise(
    cov: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """Noise with coil covariance ``cov`` along axis 0.

    Args:
        cov: ``(coils, coils)`` covariance.
        shape: trailing shape; the result is ``(coils, *shape)``.
        rng: random generator.

    Returns:
        ``(coils, *shape)`` complex64 noise.
    """
    chol = np.linalg.cholesky(cov).astype(np.complex64)
    white = complex_normal((cov.shape[0], int(np.prod(shape))), rng)
    return (chol @ white).reshape((cov.shape[0], *shape))


def estimate_covariance(noise: np.ndarray) -> np.ndarray:
    """Sample covariance ``(coils, coils)`` of ``(coils, samples)`` noise readouts."""
    n = noise.reshape(noise.shape[0], -1).astype(np.complex128)
    return np.asarray(n @ n.conj().T / n.shape[1])


def prewhitening_matrix(cov: np.ndarray) -> np.ndarray:
    """``W = L^-1`` with ``cov = L L^H``; ``W @ data`` has identity noise covariance."""
    chol = np.linalg.cholesky(cov)
    return np.asarray(np.linalg.inv(chol).astype(np.complex64))
