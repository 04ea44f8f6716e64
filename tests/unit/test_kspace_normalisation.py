"""Intensity normalisation shared by the dataset writer and the slice buffer."""

from __future__ import annotations

import numpy as np
import pytest

from kmtr_stream.kspace.normalisation import kspace_scale, normalise_kspace


def _kspace(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_scale_is_rms_of_centre_line_and_independent_of_pattern() -> None:
    rng = np.random.default_rng(0)
    k = _kspace(rng, (5, 33, 17))
    centre = 16
    ref = float(np.sqrt(np.mean(np.abs(k[:, centre, :].astype(np.complex128)) ** 2)))
    m1 = np.zeros(33, bool)
    m1[[3, 16, 20]] = True
    m2 = np.zeros(33, bool)
    m2[::2] = True
    assert kspace_scale(k * m1[None, :, None], m1, centre) == pytest.approx(ref, rel=1e-6)
    assert kspace_scale(k * m2[None, :, None], m2, centre) == pytest.approx(ref, rel=1e-6)
    out = normalise_kspace(k, m1, centre)
    assert out.dtype == np.complex64
    np.testing.assert_allclose(out, k / ref, rtol=1e-5)
    assert kspace_scale(out, m1, centre) == pytest.approx(1.0, rel=1e-5)


def test_fallbacks_and_in_place() -> None:
    rng = np.random.default_rng(1)
    k = _kspace(rng, (3, 9, 7))
    mask = np.zeros(9, bool)
    mask[[1, 2]] = True
    ref = float(np.sqrt(np.mean(np.abs(k[:, [1, 2], :].astype(np.complex128)) ** 2)))
    assert kspace_scale(k, mask, 4) == pytest.approx(ref, rel=1e-6)
    assert kspace_scale(k, np.zeros(9, bool), 4) == 1.0
    assert kspace_scale(np.zeros_like(k), mask, 1) == 1.0
    buf = k.copy()
    res = normalise_kspace(buf, mask, 4, out=buf)
    assert res is buf
    np.testing.assert_allclose(buf, k / ref, rtol=1e-5)
