"""Readout-oversampling removal against an explicit-DFT ifft/crop/fft reference."""

from __future__ import annotations

import numpy as np
import pytest

from kmtr_stream.kspace.oversampling import (
    center_sample_after,
    crop_start,
    kept_samples,
    partial_echo_offset,
    readout_crop_operator,
    remove_readout_oversampling,
)


def _centred_dft(n: int) -> np.ndarray:
    k = np.arange(n) - n // 2
    return np.exp(-2j * np.pi * np.outer(k, k) / n)


def _reference(data: np.ndarray, n_out: int) -> np.ndarray:
    """Explicit orthonormal centred DFT matrices: inverse, centre crop, forward."""
    n_in = data.shape[-1]
    f_in, f_out = _centred_dft(n_in), _centred_dft(n_out)
    profile = data.astype(np.complex128) @ (f_in.conj() / np.sqrt(n_in))
    start = n_in // 2 - n_out // 2
    return profile[..., start : start + n_out] @ (f_out.T / np.sqrt(n_out))


@pytest.mark.parametrize(
    ("coils", "n_in", "n_out"), [(3, 256, 128), (5, 75, 37), (7, 101, 50), (4, 130, 64), (3, 9, 9)]
)
def test_matches_reference_crop(coils: int, n_in: int, n_out: int) -> None:
    rng = np.random.default_rng(n_in)
    data = (rng.standard_normal((coils, n_in)) + 1j * rng.standard_normal((coils, n_in))).astype(
        np.complex64
    )
    out = remove_readout_oversampling(data, n_out)
    assert out.shape == (coils, n_out) and out.dtype == np.complex64
    np.testing.assert_allclose(out, _reference(data, n_out), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n_out", [64, 63])
def test_object_inside_fov_equals_kx_decimation(n_out: int) -> None:
    # An object inside the recon FOV: the result equals sampling its spectrum on the coarser grid.
    n_in = 2 * n_out
    rng = np.random.default_rng(n_out)
    obj = np.zeros((5, n_in), np.complex128)
    start = crop_start(n_in, n_out)
    obj[:, start + 2 : start + n_out - 2] = rng.standard_normal((5, n_out - 4))
    x = np.arange(n_in) - n_in // 2
    k_in = np.arange(n_in) - n_in // 2
    kspace = obj @ np.exp(-2j * np.pi * np.outer(x, k_in) / n_in)
    out = remove_readout_oversampling(kspace.astype(np.complex64), n_out)
    x_out = np.arange(n_out) - n_out // 2
    k_out = np.arange(n_out) - n_out // 2
    expected = obj[:, start : start + n_out] @ np.exp(-2j * np.pi * np.outer(x_out, k_out) / n_out)
    gain = np.sqrt(n_in / n_out)  # orthonormal: the object energy lands in fewer samples
    np.testing.assert_allclose(out, gain * expected, rtol=1e-4, atol=2e-4)
    if n_in == 2 * n_out and n_out % 2 == 0:
        np.testing.assert_allclose(out, gain * kspace[:, ::2], rtol=1e-4, atol=2e-4)


def test_white_noise_keeps_unit_variance() -> None:
    rng = np.random.default_rng(5)
    noise = (
        rng.standard_normal((3, 4000, 256)) + 1j * rng.standard_normal((3, 4000, 256))
    ) / np.sqrt(2)
    out = remove_readout_oversampling(noise.astype(np.complex64), 128)
    assert float(np.mean(np.abs(out) ** 2)) == pytest.approx(1.0, rel=0.01)


def test_matches_simulator_crop() -> None:
    sim = pytest.importorskip("simulator.kspace")
    rng = np.random.default_rng(6)
    data = rng.standard_normal((4, 96)).astype(np.complex64)
    np.testing.assert_allclose(
        remove_readout_oversampling(data, 48), sim.remove_readout_oversampling(data, 2), atol=1e-5
    )


def test_batched_trailing_axis() -> None:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((3, 7, 90)).astype(np.complex64)
    out = remove_readout_oversampling(data, 45)
    for c in range(3):
        np.testing.assert_allclose(out[c], _reference(data[c], 45), rtol=1e-4, atol=1e-4)


def test_center_sample_and_bounds() -> None:
    assert center_sample_after(128, 256, 128) == 64
    assert center_sample_after(101, 202, 101) == 50 or center_sample_after(101, 202, 101) == 51
    with pytest.raises(ValueError, match="cannot crop"):
        crop_start(10, 11)


@pytest.mark.parametrize(("n_in", "n_out"), [(256, 128), (75, 37)])
def test_operator_equals_fft_path(n_in: int, n_out: int) -> None:
    rng = np.random.default_rng(n_in)
    data = rng.standard_normal((5, 2 * n_in)).view(np.complex128).astype(np.complex64)
    op = readout_crop_operator(n_in, n_out)
    assert op.shape == (n_in, n_out) and op.dtype == np.complex64
    np.testing.assert_allclose(data @ op, _reference(data, n_out), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("n_full", "n_in", "center", "n_out"),
    [(128, 104, 40, 64), (75, 60, 22, 37), (101, 90, 50, 50), (64, 64, 32, 32)],
)
def test_partial_echo_operator_zero_fills_then_crops(
    n_full: int, n_in: int, center: int, n_out: int
) -> None:
    """An asymmetric readout equals the full readout with its unacquired samples zeroed,
    put through the explicit-DFT crop, on odd and even sizes."""
    rng = np.random.default_rng(n_full + n_in)
    full = rng.standard_normal((3, 2 * n_full)).view(np.complex128).astype(np.complex64)
    offset = partial_echo_offset(n_in, center, n_full)
    assert offset == n_full // 2 - center
    acquired = full[:, offset : offset + n_in]
    zeroed = np.zeros_like(full)
    zeroed[:, offset : offset + n_in] = acquired
    op = readout_crop_operator(n_in, n_out, offset=offset, n_full=n_full)
    assert op.shape == (n_in, n_out)
    np.testing.assert_allclose(acquired @ op, _reference(zeroed, n_out), rtol=1e-4, atol=1e-4)


def test_partial_echo_offset_names_center_sample_when_it_does_not_fit() -> None:
    assert partial_echo_offset(96, 32, 128) == 32  # 6/8 of the readout: the limit
    with pytest.raises(ValueError, match="partial echo beyond 6/8"):
        partial_echo_offset(92, 28, 128)
    with pytest.raises(ValueError, match="center_sample = 0 of a 100-sample readout does not"):
        partial_echo_offset(100, 0, 128)  # unset: the echo would lie outside the axis
    with pytest.raises(ValueError, match="center_sample = 90"):
        partial_echo_offset(100, 90, 128)


@pytest.mark.parametrize(
    ("n_full", "n_kept", "center", "n_out", "pre", "post"),
    [(128, 128, 64, 64, 8, 5), (75, 60, 22, 37, 3, 0), (64, 64, 32, 64, 0, 7)],
)
def test_discarded_samples_are_dropped_before_the_crop(
    n_full: int, n_kept: int, center: int, n_out: int, pre: int, post: int
) -> None:
    """A readout stored with ``pre``/``post`` extra ADC samples gives what the readout
    without them gives, whatever those samples hold."""
    rng = np.random.default_rng(n_full + pre)
    kept = rng.standard_normal((3, 2 * n_kept)).view(np.complex128).astype(np.complex64)
    junk = 1e3 * rng.standard_normal((3, 2 * (pre + post))).view(np.complex128)
    stored = np.concatenate([junk[:, :pre], kept, junk[:, pre:]], axis=1).astype(np.complex64)
    n_in = n_kept + pre + post
    assert kept_samples(n_in, center + pre, pre, post) == (n_kept, center)
    offset = partial_echo_offset(n_kept, center, n_full) if n_kept < n_full else 0
    op = readout_crop_operator(n_in, n_out, offset=offset, n_full=n_full, discard=(pre, post))
    plain = readout_crop_operator(n_kept, n_out, offset=offset, n_full=n_full)
    assert op.shape == (n_in, n_out)
    np.testing.assert_allclose(stored @ op, kept @ plain, rtol=1e-4, atol=1e-4)


def test_kept_samples_names_the_discard_fields() -> None:
    assert kept_samples(100, 50, 10, 6) == (84, 40)
    with pytest.raises(ValueError, match="discard_pre = 60 and discard_post = 40 leave none"):
        kept_samples(100, 50, 60, 40)
