"""Per-buffer compression and normalisation shared with the training data."""

from __future__ import annotations

import numpy as np
import pytest

from kmtr_stream.kspace.normalisation import (
    calibration_scale,
    calibration_slice,
    compress_and_normalise,
    normalise_kspace,
)


def _kspace(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_calibration_slice() -> None:
    assert calibration_slice(32, 8) == slice(12, 20)
    assert calibration_slice(31, 7) == slice(12, 19)
    assert calibration_slice(32, 8, center=10) == slice(6, 14)
    assert calibration_slice(32, 0) == slice(16, 17)


def test_scale_is_rms_of_coil0_over_region_and_independent_of_pattern() -> None:
    rng = np.random.default_rng(0)
    k = _kspace(rng, (5, 33, 17))
    region = calibration_slice(33, 6)
    ref = float(np.sqrt(np.mean(np.abs(k[0, region, :].astype(np.complex128)) ** 2)))
    for accel in (2, 3, 5):
        mask = np.zeros(33, bool)
        mask[::accel] = True
        mask[region] = True
        masked = k * mask[None, :, None]
        assert calibration_scale(masked, region) == pytest.approx(ref, rel=1e-6)
    out = normalise_kspace(k, region)
    assert out.dtype == np.complex64
    np.testing.assert_allclose(out, k / ref, rtol=1e-5)
    assert calibration_scale(out, region) == pytest.approx(1.0, rel=1e-5)
    buf = k.copy()
    assert normalise_kspace(buf, region, out=buf) is buf
    np.testing.assert_allclose(buf, k / ref, rtol=1e-5)
    assert calibration_scale(np.zeros_like(k), region) == 1.0


@pytest.mark.parametrize(("coils", "n_virtual", "n_ky", "kx"), [(5, 3, 31, 17), (7, 4, 40, 9)])
def test_compress_and_normalise(coils: int, n_virtual: int, n_ky: int, kx: int) -> None:
    rng = np.random.default_rng(coils)
    k = _kspace(rng, (coils, n_ky, kx))
    region = calibration_slice(n_ky, 8)
    virt, matrix, scale = compress_and_normalise(k, n_virtual, region)
    assert virt.shape == (n_virtual, n_ky, kx) and virt.dtype == np.complex64
    np.testing.assert_allclose(matrix @ matrix.conj().T, np.eye(n_virtual), atol=1e-5)
    np.testing.assert_allclose(
        virt * scale, np.einsum("vc,cyx->vyx", matrix, k), rtol=1e-4, atol=1e-4
    )
    assert calibration_scale(virt, region) == pytest.approx(1.0, rel=1e-5)


def test_matches_training_data_bit_for_bit() -> None:
    sim = pytest.importorskip("simulator.kspace")
    rng = np.random.default_rng(9)
    k = _kspace(rng, (6, 48, 40))
    ours, m1, s1 = compress_and_normalise(k, 4, calibration_slice(48, 12))
    ref, m2, s2 = sim.virtual_coil_buffer(k, 4, 12)
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(m1, m2)
    assert s1 == s2
