"""k-space resampling onto the model grid: crop/pad reference, analytic spectra, masks."""

from __future__ import annotations

import numpy as np
import pytest

from kmtr_stream.kspace.resample import axis_map, axis_positions, model_mask, to_model_grid


def _crop_pad_reference(k: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Centred spectrum cropped or zero-padded to ``n_out`` (DC at n // 2 before and after)."""
    n_in = k.shape[axis]
    out_shape = list(k.shape)
    out_shape[axis] = n_out
    out = np.zeros(out_shape, dtype=k.dtype)
    for i in range(n_out):
        j = i - n_out // 2 + n_in // 2
        if 0 <= j < n_in:
            src = [slice(None)] * k.ndim
            dst = [slice(None)] * k.ndim
            src[axis], dst[axis] = j, i
            out[tuple(dst)] = k[tuple(src)]
    return out


@pytest.mark.parametrize(("n_ky", "n_kx"), [(64, 64), (63, 65), (80, 96), (48, 33), (97, 64)])
def test_same_fov_is_crop_or_pad_of_the_centred_spectrum(n_ky: int, n_kx: int) -> None:
    rng = np.random.default_rng(n_ky * 100 + n_kx)
    k = (rng.standard_normal((3, n_ky, n_kx)) + 1j * rng.standard_normal((3, n_ky, n_kx)))
    k = k.astype(np.complex64)
    mask = np.ones(n_ky, dtype=bool)
    # Same field of view, other matrix: the pixel spacing changes, the spectrum is cut or padded.
    out, m = to_model_grid(
        k, mask, axis_map(n_kx, 200.0, 64, 200.0), axis_map(n_ky, 200.0, 64, 200.0), 200.0, 200.0
    )
    ref = _crop_pad_reference(_crop_pad_reference(k, 64, 2), 64, 1)
    ref_mask = _crop_pad_reference(mask[None].astype(np.int8), 64, 1)[0].astype(bool)
    np.testing.assert_array_equal(m, ref_mask)
    np.testing.assert_array_equal(out, ref * ref_mask[None, :, None])


def _gaussian_kspace(n: int, fov: float, x0: float, sigma: float) -> np.ndarray:
    """Orthonormal-DFT samples of a Gaussian blob at ``x0`` (analytic Fourier transform)."""
    k = axis_positions(n, fov)
    dx = fov / n
    g = sigma * np.sqrt(2 * np.pi) * np.exp(-2 * (np.pi * sigma * k) ** 2 - 2j * np.pi * k * x0)
    return g / (np.sqrt(n) * dx)


@pytest.mark.parametrize(("n_acq", "fov_acq"), [(150, 300.0), (151, 340.0), (96, 240.0)])
def test_other_fov_matches_the_analytic_spectrum(n_acq: int, fov_acq: float) -> None:
    # A smooth blob well inside both fields of view: its spectrum on the model grid is known.
    x0, y0, sigma = 22.0, -15.0, 7.0
    ky_a = _gaussian_kspace(n_acq, fov_acq, y0, sigma)
    kx_a = _gaussian_kspace(n_acq + 10, fov_acq, x0, sigma)
    k = (ky_a[:, None] * kx_a[None, :])[None].astype(np.complex64)
    mx, my = axis_map(n_acq + 10, fov_acq, 64, 200.0), axis_map(n_acq, fov_acq, 64, 200.0)
    out, m = to_model_grid(k, np.ones(n_acq, bool), mx, my, fov_acq, 200.0)
    want = _gaussian_kspace(64, 200.0, y0, sigma)[:, None] * _gaussian_kspace(64, 200.0, x0, sigma)
    assert m.all()
    err = np.abs(out[0] - want).max() / np.abs(want).max()
    assert err < 2e-3


def test_other_fov_mask_keeps_the_sampled_fraction() -> None:
    n_acq, fov_acq = 120, 300.0
    mask = np.zeros(n_acq, dtype=bool)
    mask[::4] = True
    my = axis_map(n_acq, fov_acq, 64, 200.0)
    m = model_mask(my, mask, fov_acq, 200.0)
    # Acquired lines every 4 / 300 mm^-1 = 2.67 model lines: about 3 of every 8 model lines.
    assert 0.3 < m.mean() < 0.45
    # A model line counts as acquired only next to an acquired line.
    k_m, k_a = axis_positions(64, 200.0), axis_positions(n_acq, fov_acq)[mask]
    for i in np.flatnonzero(m):
        assert np.abs(k_a - k_m[i]).min() <= 0.5 / 200.0 + 1e-12


def test_lines_outside_the_mask_do_not_leak() -> None:
    rng = np.random.default_rng(5)
    k = (rng.standard_normal((2, 90, 90)) + 1j * rng.standard_normal((2, 90, 90))).astype(
        np.complex64
    )
    mask = rng.random(90) < 0.3
    mx, my = axis_map(90, 260.0, 64, 200.0), axis_map(90, 260.0, 64, 200.0)
    a, _ = to_model_grid(k, mask, mx, my, 260.0, 200.0)
    k2 = k.copy()
    k2[:, ~mask] = 1e6  # garbage in lines that were never acquired
    b, _ = to_model_grid(k2, mask, mx, my, 260.0, 200.0)
    np.testing.assert_array_equal(a, b)
