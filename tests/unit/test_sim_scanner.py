"""Scanner physics: noise covariance and prewhitening, oversampling, fully sampled recon."""

from __future__ import annotations

from dataclasses import replace

import ismrmrd
import numpy as np
import pytest

from kmtr_stream.errors import ConfigError
from simulator.cohort import make_subject
from simulator.config import SimConfig
from simulator.kspace import fft2c, ifft2c, remove_readout_oversampling, virtual_coil_buffer
from simulator.noise import (
    correlated_noise,
    estimate_covariance,
    prewhitening_matrix,
    random_covariance,
)
from simulator.scan import coil_kspace, scanner_setup, simulate_scan

SMALL = SimConfig(nx=56, ny=48, fov_x_mm=175.0, fov_y_mm=150.0, n_phases=6, n_coils=6, n_calib=8)


@pytest.mark.parametrize("n_coils", [3, 8])
def test_noise_covariance_and_prewhitening(n_coils: int) -> None:
    rng = np.random.default_rng(n_coils)
    cov = random_covariance(n_coils, rng, 0.3)
    np.testing.assert_allclose(cov, cov.conj().T)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    assert np.mean(np.diag(cov).real) == pytest.approx(1.0)
    off = np.abs(cov - np.diag(np.diag(cov)))
    assert off.max() > 0.01  # really correlated
    noise = correlated_noise(cov, (200, 131), rng)
    est = estimate_covariance(noise)
    np.testing.assert_allclose(est, cov, atol=0.03)
    white = estimate_covariance(prewhitening_matrix(cov) @ noise.reshape(n_coils, -1))
    np.testing.assert_allclose(white, np.eye(n_coils), atol=0.03)


@pytest.mark.parametrize("shape", [(6, 32), (5, 33)])
def test_oversampling_removal_is_a_centred_crop(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    ny, nx = shape
    img = (rng.standard_normal((ny, 2 * nx)) + 1j * rng.standard_normal((ny, 2 * nx))).astype(
        np.complex64
    )
    k = fft2c(img)
    cropped = remove_readout_oversampling(k, 2)
    start = nx - nx // 2
    np.testing.assert_allclose(ifft2c(cropped), img[:, start : start + nx], atol=1e-5)
    with pytest.raises(ValueError):
        remove_readout_oversampling(k[:, :-1], 2)


def test_oversampled_render_matches_recon_grid() -> None:
    s = make_subject(2, 0, SMALL)
    setup_os = scanner_setup(s, SMALL, oversampled=True)
    setup = scanner_setup(s, SMALL, oversampled=False)
    k_os, _ = coil_kspace(s, SMALL, setup_os, [0], oversampled=True)
    k, _ = coil_kspace(s, SMALL, setup, [0], oversampled=False)
    np.testing.assert_allclose(remove_readout_oversampling(k_os, 2), k, atol=2e-4)


def test_fully_sampled_recon_matches_phantom() -> None:
    """Tolerance: relative RMSE < 5% inside the body at SNR 400 (measured 0.3%; 3% at SNR 40)."""
    cfg = SimConfig(**{**SMALL.__dict__, "snr": 400.0, "accel": 2, "n_calib": SMALL.ny})
    scan = simulate_scan(4, 0, cfg)
    assert scan.plan.mask.all()  # calibration region = every line, so all lines carry noise
    k = remove_readout_oversampling(scan.kspace, 2)  # (P, S, C, ky, nx)
    coil_img = ifft2c(k)
    start = cfg.nx_os // 2 - cfg.nx // 2
    sens = np.moveaxis(scan.setup.sensitivities[..., start : start + cfg.nx], 0, 1)[None]
    recon = (np.conj(sens) * coil_img).sum(2) / np.maximum((np.abs(sens) ** 2).sum(2), 1e-12)
    truth = scan.images
    body = np.abs(truth) > 0.05
    err = np.sqrt(np.mean(np.abs(recon - truth)[body] ** 2) / np.mean(np.abs(truth)[body] ** 2))
    assert err < 0.05


def test_virtual_coil_buffer() -> None:
    rng = np.random.default_rng(1)
    k = (rng.standard_normal((6, 20, 17)) + 1j * rng.standard_normal((6, 20, 17))).astype(
        np.complex64
    )
    v, matrix, scale = virtual_coil_buffer(k, 3, 6)
    assert v.shape == (3, 20, 17) and matrix.shape == (3, 6)
    expected = (matrix @ k.reshape(6, -1)).reshape(3, 20, 17)
    np.testing.assert_allclose(v * scale, expected, rtol=1e-4, atol=1e-5)
    assert np.sqrt(np.mean(np.abs(v[0, 7:13]) ** 2)) == pytest.approx(1.0, rel=1e-5)


def test_partial_echo_drops_only_the_early_readout_samples() -> None:
    """partial_echo changes the imaging readouts alone: the same k-space, its first
    samples not acquired, the echo position in center_sample; noise readouts full."""
    small = replace(SMALL, n_slices=1, n_phases=2, n_noise_readouts=2)
    echo = replace(small, partial_echo=0.8)
    full_scan, echo_scan = simulate_scan(3, 0, small), simulate_scan(3, 0, echo)
    np.testing.assert_array_equal(full_scan.kspace, echo_scan.kspace)
    assert echo_scan.xml(echo) == full_scan.xml(small)
    dropped = small.nx_os - round(0.8 * small.nx_os)
    assert echo.echo_dropped == dropped > 0 and small.echo_dropped == 0
    pairs = list(zip(full_scan.acquisitions(small), echo_scan.acquisitions(echo), strict=True))
    for a, b in pairs:
        if a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            assert b.number_of_samples == small.nx_os and b.center_sample == small.nx_os // 2
            np.testing.assert_array_equal(a.data, b.data)
            continue
        assert b.number_of_samples == small.nx_os - dropped
        assert b.center_sample == small.nx_os // 2 - dropped
        np.testing.assert_array_equal(b.data, a.data[:, dropped:])
        assert (b.idx.kspace_encode_step_1, b.flags) == (a.idx.kspace_encode_step_1, a.flags)
    with pytest.raises(ConfigError, match="partial_echo must be in"):
        replace(small, partial_echo=0.5)


def test_adc_discard_adds_flagged_samples_at_both_ends_of_imaging_readouts_only() -> None:
    small = replace(SMALL, n_slices=1, n_phases=2, n_noise_readouts=2)
    both = replace(small, adc_discard=5, partial_echo=0.8)
    echo = replace(small, partial_echo=0.8)
    plain, padded = simulate_scan(3, 0, echo), simulate_scan(3, 0, both)
    np.testing.assert_array_equal(plain.kspace, padded.kspace)
    assert padded.xml(both) == plain.xml(echo)
    for a, b in zip(plain.acquisitions(echo), padded.acquisitions(both), strict=True):
        if a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            np.testing.assert_array_equal(a.data, b.data)
            assert b.discard_pre == b.discard_post == 0
            continue
        assert (b.discard_pre, b.discard_post) == (5, 5)
        assert b.number_of_samples == a.number_of_samples + 10
        assert b.center_sample == a.center_sample + 5
        np.testing.assert_array_equal(b.data[:, 5:-5], a.data)
        assert np.abs(b.data[:, :5]).min() > np.abs(a.data).max()  # a transient, not data
    with pytest.raises(ConfigError, match="adc_discard must be in"):
        replace(small, adc_discard=-1)
