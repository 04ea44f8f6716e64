"""noise_prewhitening gadget fed directly through process()/flush()."""

from __future__ import annotations

import logging
import math

import ismrmrd
import numpy as np
import pytest

from gadgets.noise_prewhitening import NoisePrewhiteningGadget
from kmtr_stream.messages import DataFault, ErrorReport
from tests.unit.kspace_streams import acquisition, context, header_xml, make, noise_readouts, run


def _mix(rng: np.random.Generator, coils: int) -> np.ndarray:
    a = rng.standard_normal((coils, coils)) + 1j * rng.standard_normal((coils, coils))
    return a + 2.0 * np.eye(coils)


def _cov(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.complex128)
    return x @ x.conj().T / (x.shape[1] - 1)


@pytest.mark.parametrize(("coils", "kx"), [(3, 33), (5, 65), (7, 129)])
def test_imaging_noise_is_white_after_dwell_scaling(coils: int, kx: int) -> None:
    rng = np.random.default_rng(coils)
    mix = _mix(rng, coils)
    ctx = context(header_xml(kx, kx, 16, rnbw=1.0))
    g = make(NoisePrewhiteningGadget, ctx, complex_variance=1.0)
    noise_dwell, acq_dwell = 5.0, 2.5
    # Noise variance per sample scales with bandwidth (1/dwell): imaging lines are noisier.
    msgs = noise_readouts(rng, mix, 40, 256, dwell_us=noise_dwell)
    amp = math.sqrt(noise_dwell / acq_dwell)
    imaging = []
    for ky in range(16):
        for _ in range(20):
            w = (
                rng.standard_normal((coils, kx)) + 1j * rng.standard_normal((coils, kx))
            ) / math.sqrt(2)
            imaging.append(acquisition(amp * (mix @ w), ky=ky, dwell_us=acq_dwell))
    out = run([g], msgs + imaging)
    assert len(out) == len(imaging)  # noise readouts are consumed
    assert not any(a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) for a in out)
    assert g.scale == pytest.approx(math.sqrt(acq_dwell / noise_dwell))
    white = np.concatenate([a.data for a in out], axis=1)
    assert white.dtype == np.complex64
    np.testing.assert_allclose(_cov(white), np.eye(coils), atol=0.06)
    # Reference: the NumPy whitener inv(chol(C)) applied line by line.
    noise = np.concatenate([m.data for m in msgs], axis=1)
    ref_w = np.linalg.inv(np.linalg.cholesky(_cov(noise))) * g.scale
    np.testing.assert_allclose(out[0].data, ref_w @ imaging[0].data, rtol=1e-3, atol=1e-4)


def test_gadgetron_scale_with_header_bandwidth() -> None:
    rng = np.random.default_rng(0)
    ctx = context(header_xml(16, 16, 4, rnbw=0.8))
    g = make(NoisePrewhiteningGadget, ctx, complex_variance=2.0, noise_bandwidth_factor=0.5)
    run(
        [g],
        [
            *noise_readouts(rng, np.eye(3), 4, 64, dwell_us=4.0),
            acquisition(np.ones((3, 16)), dwell_us=2.0),
        ],
    )
    assert g.receiver_noise_bandwidth == 0.8  # header value wins over the fallback param
    assert g.scale == pytest.approx(math.sqrt(2.0 * 2.0 / 4.0 * 0.8))


def test_no_noise_scan_is_identity_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    ctx = context(header_xml(16, 16, 4))
    g = make(NoisePrewhiteningGadget, ctx)
    data = np.arange(48, dtype=np.float32).reshape(3, 16).astype(np.complex64)
    with caplog.at_level(logging.WARNING, logger="kmtr_stream.test"):
        out = run([g], [acquisition(data, ky=k) for k in range(3)])
    assert len(out) == 3
    np.testing.assert_array_equal(out[1].data, data)
    warnings = [r for r in caplog.records if "no noise scan" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_late_noise_is_consumed_and_coil_mismatch_named() -> None:
    rng = np.random.default_rng(1)
    ctx = context(header_xml(16, 16, 4))
    g = make(NoisePrewhiteningGadget, ctx)
    out = run(
        [g],
        [
            *noise_readouts(rng, np.eye(3), 2, 64),
            acquisition(np.ones((3, 16))),
            *noise_readouts(rng, np.eye(3), 1, 64),
        ],
    )
    assert len(out) == 1
    g2 = make(NoisePrewhiteningGadget, ctx, gadget_id="nw")
    # A failed calibration: one ERROR naming it, a flag for every later slice, and the
    # readout itself goes on unwhitened.
    err, fault, acq = run([g2], [*noise_readouts(rng, np.eye(3), 2, 64),
                                 acquisition(np.ones((4, 16)))])
    assert isinstance(err, ErrorReport) and err.code == "invalid_data"
    assert "noise scan has 3 coils but imaging readouts have 4" in err.message
    assert isinstance(fault, DataFault) and fault.cause == "noise_calibration_failed"
    assert fault.key is None and isinstance(acq, ismrmrd.Acquisition)
    assert np.array_equal(acq.data, np.ones((4, 16)))


def test_inf_in_noise_scan_fails_the_calibration() -> None:
    rng = np.random.default_rng(2)
    noise = noise_readouts(rng, np.eye(3), 2, 64)
    data = noise[0].data.copy()
    data[1, 5] = np.inf
    noise[0] = ismrmrd.Acquisition(noise[0].getHead(), data)
    g = make(NoisePrewhiteningGadget, context(header_xml(16, 16, 4)))
    err, fault, _ = run([g], [*noise, acquisition(np.ones((3, 16)))])
    assert "the noise scan has NaN or infinite samples" in err.message
    assert fault.cause == "noise_calibration_failed" and g.prewhitener is None
