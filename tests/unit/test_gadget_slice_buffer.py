"""slice_buffer gadget: exact k-space, triggers, flush, eviction, normalisation."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import ismrmrd
import numpy as np
import pytest

from gadgets.slice_buffer import SliceBufferGadget
from kmtr_stream.kspace.normalisation import (
    calibration_slice,
    compress_and_normalise,
    normalise_kspace,
)
from kmtr_stream.limits import Limits
from kmtr_stream.messages import ErrorReport, SliceKSpace, SliceRefused
from tests.unit.kspace_streams import (
    acquisition,
    context,
    header_xml,
    make,
    run,
    undersampled_lines,
)


def _mask(n_ky: int, accel: int, acs: int) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros(n_ky, bool)
    mask[::accel] = True
    calib = np.zeros(n_ky, bool)
    lo = n_ky // 2 - acs // 2
    calib[lo : lo + acs] = True
    return mask | calib, calib


def _kspace(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.mark.parametrize(("coils", "n_ky", "kx"), [(3, 31, 17), (5, 40, 33), (7, 25, 9)])
def test_reproduces_undersampled_kspace_exactly(coils: int, n_ky: int, kx: int) -> None:
    rng = np.random.default_rng(coils)
    n_slices, n_phases = 2, 3
    truth = _kspace(rng, (n_slices, n_phases, coils, n_ky, kx))
    mask, calib = _mask(n_ky, 3, 6)
    ctx = context(header_xml(kx, kx, n_ky, n_slices, n_phases, fov_mm=(340.0, 300.0, 8.0)))
    g = make(SliceBufferGadget, ctx, normalise=False)
    msgs = []
    for p in range(n_phases):
        for s in range(n_slices):
            msgs += undersampled_lines(truth[s, p], mask, calib, slice_=s, phase=p)
    out = run([g], msgs)
    assert len(out) == n_slices * n_phases and all(isinstance(m, SliceKSpace) for m in out)
    for m in out:
        expected = truth[m.slice, m.phase] * mask[None, :, None]
        assert m.kspace.dtype == np.complex64 and m.kspace.shape == (coils, n_ky, kx)
        np.testing.assert_array_equal(m.kspace, expected)
        np.testing.assert_array_equal(m.mask, mask)
        assert (m.trigger, m.final, m.n_slices, m.n_phases) == ("last_in_slice", True, 2, 3)
        assert m.lines_used == int(mask.sum())
        assert m.voxel_size_mm == pytest.approx((340.0 / kx, 300.0 / n_ky, 8.0))
        assert m.header is ctx.header and m.t_last_line_ns > 0
    assert [m.last_in_measurement for m in out] == [False] * 5 + [True]


def test_normalisation_matches_shared_function() -> None:
    rng = np.random.default_rng(0)
    truth = _kspace(rng, (4, 24, 15)) * 37.0
    mask, calib = _mask(24, 4, 4)  # calibration-flagged block 10..13
    ctx = context(header_xml(15, 15, 24))
    (m,) = run([make(SliceBufferGadget, ctx)], undersampled_lines(truth, mask, calib))
    ref = normalise_kspace(truth * mask[None, :, None], slice(10, 14))
    np.testing.assert_allclose(m.kspace, ref, rtol=1e-6)


@pytest.mark.parametrize("progressive", [False, True])
def test_virtual_coils_match_training_data(progressive: bool) -> None:
    rng = np.random.default_rng(7)
    n_ky, n_calib = 40, 8
    truth = _kspace(rng, (6, n_ky, 21))
    mask, calib = _mask(n_ky, 3, n_calib)
    ctx = context(header_xml(21, 21, n_ky))
    params: dict[str, Any] = (
        {"trigger": "progressive", "coverage_fraction": 0.4} if progressive else {}
    )
    g = make(SliceBufferGadget, ctx, virtual_coils=4, calibration_lines=n_calib, **params)
    out = run([g], undersampled_lines(truth, mask, calib))
    assert out[-1].final and out[-1].kspace.shape == (4, n_ky, 21)
    # Training data: simulator.kspace.virtual_coil_buffer (same maths, shared here).
    region = calibration_slice(n_ky, n_calib)
    ref, _, _ = compress_and_normalise(truth * mask[None, :, None], 4, region)
    np.testing.assert_allclose(out[-1].kspace, ref, rtol=1e-5, atol=1e-6)
    if progressive:
        assert len(out) >= 2 and not out[0].final
        early = out[0].mask
        ref0, _, _ = compress_and_normalise(truth * early[None, :, None], 4, region)
        np.testing.assert_allclose(out[0].kspace, ref0, rtol=1e-5, atol=1e-6)


def test_coverage_fires_exactly_at_target_and_once() -> None:
    rng = np.random.default_rng(1)
    n_ky = 32
    truth = _kspace(rng, (3, n_ky, 8))
    mask, calib = _mask(n_ky, 4, 8)  # lines 0,4,...,28 plus 12..19
    ctx = context(header_xml(8, 8, n_ky, calibration_mode="embedded"))
    g = make(SliceBufferGadget, ctx, trigger="coverage", coverage_fraction=0.25, normalise=False)
    lines = undersampled_lines(truth, mask, calib)
    emitted_at = [
        i for i, a in enumerate(lines) for m in g.process(a) if isinstance(m, SliceKSpace)
    ]
    kys = [a.idx.kspace_encode_step_1 for a in lines]
    # 8 lines are needed (0.25 * 32) and the calibration block 12..19 must be complete, which
    # is known when line 20 (first imaging line above it) arrives.
    assert emitted_at == [kys.index(20)]
    assert list(g.flush()) == []
    assert g.dropped_lines == len(lines) - kys.index(20) - 1


def test_progressive_tags_lines_and_final_once() -> None:
    rng = np.random.default_rng(2)
    n_ky = 20
    truth = _kspace(rng, (3, n_ky, 7))
    mask = np.ones(n_ky, bool)
    ctx = context(header_xml(7, 7, n_ky))
    g = make(
        SliceBufferGadget,
        ctx,
        trigger="progressive",
        coverage_fraction=0.6,
        progressive_fractions=(0.8, 0.9),
        normalise=False,
    )
    out = run([g], undersampled_lines(truth, mask))
    assert [(m.trigger, m.final, m.lines_used) for m in out] == [
        ("progressive", False, 12),
        ("progressive", False, 16),
        ("progressive", False, 18),
        ("progressive", True, 20),
    ]
    # Early emissions are snapshots: later lines do not leak into them.
    np.testing.assert_array_equal(out[0].kspace[:, 12:], 0)
    np.testing.assert_array_equal(out[0].kspace[:, :12], truth[:, :12])
    assert out[-1].last_in_measurement and not any(m.last_in_measurement for m in out[:-1])


def test_flush_emits_every_open_buffer() -> None:
    rng = np.random.default_rng(3)
    ctx = context(header_xml(5, 5, 8, n_slices=3))
    g = make(SliceBufferGadget, ctx, trigger="last_in_slice", normalise=False)
    msgs = [acquisition(_kspace(rng, (2, 5)), ky=k, slice_=s) for s in range(3) for k in (1, 4)]
    emitted = [m for a in msgs for m in g.process(a)]
    assert emitted == []
    out = list(g.flush())
    assert [(m.slice, m.trigger, m.final, m.lines_used) for m in out] == [
        (0, "flush", True, 2),
        (1, "flush", True, 2),
        (2, "flush", True, 2),
    ]
    assert [m.last_in_measurement for m in out] == [False, False, True]


def test_eviction_is_reported_and_late_lines_dropped(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(4)
    ctx = context(header_xml(5, 5, 8, n_phases=4))
    g = make(SliceBufferGadget, ctx, gadget_id="sb", max_open_buffers=2, normalise=False)
    with caplog.at_level(logging.WARNING, logger="kmtr_stream.test"):
        out = [
            m for p in range(3) for m in g.process(acquisition(_kspace(rng, (2, 5)), ky=0, phase=p))
        ]
    (rep,) = out
    assert isinstance(rep, ErrorReport) and rep.code == "evicted" and rep.gadget == "sb"
    assert rep.context == {"slice": 0, "phase": 0, "repetition": 0, "lines": 1}
    assert "slice=0 phase=0" in rep.message
    assert any("evicted" in r.getMessage() for r in caplog.records)
    # A late line of the evicted buffer neither reopens it nor emits it later.
    assert list(g.process(acquisition(_kspace(rng, (2, 5)), ky=1, phase=0))) == []
    assert sorted(m.phase for m in g.flush()) == [1, 2]


def test_skips_noise_and_rejects_bad_lines() -> None:
    ctx = context(header_xml(5, 5, 8))
    g = make(SliceBufferGadget, ctx, gadget_id="sb")
    noise = acquisition(np.ones((2, 5)), flags=[ismrmrd.ACQ_IS_NOISE_MEASUREMENT])
    assert list(g.process(noise)) == [] and g.skipped_lines == 1
    with pytest.raises(Exception, match=r"kspace_encode_step_1=8 outside 0\.\.7"):
        list(g.process(acquisition(np.ones((2, 5)), ky=8)))
    list(g.process(acquisition(np.ones((2, 5)), ky=0)))
    with pytest.raises(Exception, match="does not fit buffer"):
        list(g.process(acquisition(np.ones((3, 5)), ky=1)))


def test_last_in_measurement_flag() -> None:
    ctx = context(header_xml(5, 5, 4, n_slices=4))
    g = make(SliceBufferGadget, ctx)
    a = acquisition(
        np.ones((2, 5)),
        ky=2,
        slice_=1,
        flags=[ismrmrd.ACQ_LAST_IN_SLICE, ismrmrd.ACQ_LAST_IN_MEASUREMENT],
    )
    (m,) = list(g.process(a))
    assert m.last_in_measurement and m.final


def test_voxel_dz_is_slice_spacing() -> None:
    acq = acquisition(np.ones((2, 5)), ky=1, flags=[ismrmrd.ACQ_LAST_IN_SLICE])
    fov = (320.0, 300.0, 8.0)
    ctx = context(header_xml(5, 5, 4, fov_mm=fov, slice_spacing_mm=10.0))
    (m,) = list(make(SliceBufferGadget, ctx).process(acq))
    assert m.voxel_size_mm == pytest.approx((64.0, 75.0, 10.0))
    (m,) = list(make(SliceBufferGadget, ctx, slice_spacing_mm=12.5).process(acq))
    assert m.voxel_size_mm[2] == 12.5
    ctx = context(header_xml(5, 5, 4, fov_mm=fov))  # no spacing: the slice thickness
    (m,) = list(make(SliceBufferGadget, ctx).process(acq))
    assert m.voxel_size_mm[2] == 8.0


def _limited(limits: Limits, **params: Any) -> SliceBufferGadget:
    ctx = dataclasses.replace(context(header_xml(5, 5, 8, n_slices=3)), limits=limits)
    return make(SliceBufferGadget, ctx, trigger="last_in_slice", normalise=False, **params)


def test_max_buffered_bytes_refuses_the_new_buffer_before_allocating_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(11)
    probe = _limited(Limits())
    one = 2 * probe.store.n_ky * 5 * 8  # a 2-coil buffer of complex64
    g = _limited(Limits(max_buffered_bytes=2 * one))
    for s in (0, 1):
        assert list(g.process(acquisition(_kspace(rng, (2, 5)), ky=1, slice_=s))) == []
    (err,) = list(g.process(acquisition(_kspace(rng, (2, 5)), ky=1, slice_=2)))
    assert isinstance(err, ErrorReport) and err.code == "limit"
    assert err.context["limit"] == "max_buffered_bytes" and err.context["value"] == 2 * one
    assert (err.context["slice"], err.context["refused"]) == (2, True)
    assert "slice=2" in err.message and f"({one} bytes)" in err.message
    assert g.store.bytes_open() == 2 * one  # nothing was allocated for the refused slice
    # its later lines are dropped without an ERROR each
    assert list(g.process(acquisition(_kspace(rng, (2, 5)), ky=3, slice_=2))) == []
    assert g.over_limit_lines == 1
    out = list(g.flush())  # the two valid slices still come out, whole; the third refused
    assert [(m.slice, m.lines_used) for m in out[:2]] == [(0, 1), (1, 1)]
    (ref,) = out[2:]
    assert isinstance(ref, SliceRefused) and (ref.slice, ref.causes) == (2, ("max_buffered_bytes",))
    assert ref.last_in_measurement


def test_a_limit_refused_slice_is_refused_on_its_last_line_not_missing() -> None:
    g = _limited(Limits(max_coils=1))
    rng = np.random.default_rng(3)
    (err,) = list(g.process(acquisition(_kspace(rng, (2, 5)), ky=0, slice_=1)))
    assert err.code == "limit" and err.context["limit"] == "max_coils"
    last = acquisition(_kspace(rng, (2, 5)), ky=4, slice_=1, flags=[ismrmrd.ACQ_LAST_IN_SLICE])
    (ref,) = list(g.process(last))
    assert isinstance(ref, SliceRefused) and (ref.slice, ref.phase) == (1, 0)
    assert ref.causes == ("max_coils",) and not ref.last_in_measurement
    assert list(g.flush()) == []  # refused once, not again at the end of the stream


def test_max_coils_refuses_a_readout_with_more_channels() -> None:
    g = _limited(Limits(max_coils=1))
    (err,) = list(g.process(acquisition(_kspace(np.random.default_rng(0), (2, 5)), ky=0)))
    assert err.context["limit"] == "max_coils" and "2 coils" in err.message
    assert g.store.bytes_open() == 0


def test_max_open_buffers_server_limit_caps_the_gadget_parameter() -> None:
    g = _limited(Limits(max_open_buffers=1), max_open_buffers=8)
    rng = np.random.default_rng(2)
    out = [m for s in (0, 1) for m in g.process(acquisition(_kspace(rng, (2, 5)), ky=0, slice_=s))]
    (rep,) = out  # the second buffer evicts the first, reported
    assert isinstance(rep, ErrorReport) and rep.code == "evicted"
    assert rep.context == {"slice": 0, "phase": 0, "repetition": 0, "lines": 1}
    assert "max_open_buffers (server limit)=1 reached" in rep.message


@pytest.mark.parametrize("flag", range(1, 65))
def test_flag_masks_agree_with_is_flag_set(flag: int) -> None:
    """The one-mask tests the gadgets use say what ``is_flag_set`` over the tuples says."""
    from kmtr_stream.kspace.buffer import (
        CALIBRATION_FLAGS,
        NON_IMAGING_FLAGS,
        is_calibration,
        is_non_imaging,
    )

    acq = ismrmrd.Acquisition()
    acq.set_flag(flag)
    acq.set_flag(ismrmrd.ACQ_LAST_IN_SLICE)  # an unrelated flag beside it changes nothing
    assert is_non_imaging(acq) == any(acq.is_flag_set(f) for f in NON_IMAGING_FLAGS)
    assert is_calibration(acq) == any(acq.is_flag_set(f) for f in CALIBRATION_FLAGS)
    assert is_non_imaging(acq) == (flag in NON_IMAGING_FLAGS)
