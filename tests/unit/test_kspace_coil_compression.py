"""SVD coil compression: kept energy and orthonormality against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

from kmtr_stream.kspace.coil_compression import (
    apply_compression,
    compression_matrix,
    energy_fraction,
)


def _calib(rng: np.random.Generator, coils: int, rank: int, n: int, noise: float) -> np.ndarray:
    sources = rng.standard_normal((rank, n)) + 1j * rng.standard_normal((rank, n))
    sens = rng.standard_normal((coils, rank)) + 1j * rng.standard_normal((coils, rank))
    eps = noise * (rng.standard_normal((coils, n)) + 1j * rng.standard_normal((coils, n)))
    return (sens @ sources + eps).astype(np.complex64)


@pytest.mark.parametrize(("coils", "n_virtual"), [(3, 2), (5, 3), (7, 4), (7, 7)])
def test_compressed_coils_keep_stated_energy(coils: int, n_virtual: int) -> None:
    rng = np.random.default_rng(coils * 10 + n_virtual)
    calib = _calib(rng, coils, rank=coils, n=333, noise=0.1)
    a = compression_matrix(calib, n_virtual)
    assert a.shape == (n_virtual, coils) and a.dtype == np.complex64
    np.testing.assert_allclose(a @ a.conj().T, np.eye(n_virtual), atol=1e-5)
    virt = apply_compression(a, calib)
    kept = float(np.sum(np.abs(virt.astype(np.complex128)) ** 2) / np.sum(np.abs(calib) ** 2.0))
    stated = energy_fraction(calib, n_virtual)
    assert kept == pytest.approx(stated, rel=1e-4)
    # Reference: eigenvalues of the coil covariance.
    ev = np.sort(
        np.linalg.eigvalsh(calib.astype(np.complex128) @ calib.conj().T.astype(np.complex128))
    )[::-1]
    assert stated == pytest.approx(ev[:n_virtual].sum() / ev.sum(), rel=1e-4)
    if n_virtual == coils:
        assert stated == pytest.approx(1.0, abs=1e-6)


def test_low_rank_data_is_kept_whole() -> None:
    rng = np.random.default_rng(0)
    calib = _calib(rng, 7, rank=3, n=200, noise=0.0)
    assert energy_fraction(calib, 3) == pytest.approx(1.0, abs=1e-5)
    a = compression_matrix(calib, 3)
    # Projection back onto the coil space reproduces the data: nothing was lost.
    back = a.conj().T @ apply_compression(a, calib)
    np.testing.assert_allclose(back, calib, rtol=1e-3, atol=1e-3)


def test_trailing_shape_and_bounds() -> None:
    rng = np.random.default_rng(2)
    data = rng.standard_normal((5, 3, 11)).astype(np.complex64)
    a = compression_matrix(data, 2)
    assert apply_compression(a, data).shape == (2, 3, 11)
    with pytest.raises(ValueError, match="n_virtual"):
        compression_matrix(data, 6)
