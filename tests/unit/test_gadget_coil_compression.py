"""coil_compression gadget: hold until the matrix is known, release compressed, lose nothing."""

from __future__ import annotations

import logging

import ismrmrd
import numpy as np
import pytest

from gadgets.coil_compression import CoilCompressionGadget
from kmtr_stream.kspace.coil_compression import compression_matrix, energy_fraction
from tests.unit.kspace_streams import acquisition, context, header_xml, make


def _lines(rng: np.random.Generator, coils: int, kx: int, n: int) -> list[np.ndarray]:
    sens = rng.standard_normal((coils, 2)) + 1j * rng.standard_normal((coils, 2))
    return [
        (
            sens @ (rng.standard_normal((2, kx)) + 1j * rng.standard_normal((2, kx)))
            + 0.05 * rng.standard_normal((coils, kx))
        ).astype(np.complex64)
        for _ in range(n)
    ]


@pytest.mark.parametrize(("coils", "n_virtual", "kx"), [(5, 3, 33), (7, 4, 17), (3, 2, 9)])
def test_holds_then_releases_all_lines_compressed(coils: int, n_virtual: int, kx: int) -> None:
    rng = np.random.default_rng(coils)
    ctx = context(header_xml(kx, kx, 32))
    g = make(
        CoilCompressionGadget, ctx, gadget_id="cc", n_virtual_coils=n_virtual, calibration_lines=4
    )
    data = _lines(rng, coils, kx, 10)
    flags = [
        [],
        [],
        [ismrmrd.ACQ_IS_PARALLEL_CALIBRATION],
        [],
        [ismrmrd.ACQ_IS_PARALLEL_CALIBRATION],
        [ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING],
        [ismrmrd.ACQ_IS_PARALLEL_CALIBRATION],
        [],
        [],
        [],
    ]
    emitted_per_line = []
    out = []
    for ky, (d, f) in enumerate(zip(data, flags, strict=True)):
        got = list(g.process(acquisition(d, ky=ky, flags=f)))
        emitted_per_line.append(len(got))
        out.extend(got)
    out.extend(g.flush())
    # Held until the 4th calibration line (index 6), then all 7 released; then one by one.
    assert emitted_per_line == [0, 0, 0, 0, 0, 0, 7, 1, 1, 1]
    assert [a.idx.kspace_encode_step_1 for a in out] == list(range(10))
    calib = np.concatenate([data[i] for i in (2, 4, 5, 6)], axis=1)
    ref = compression_matrix(calib, n_virtual)
    for a, d in zip(out, data, strict=True):
        assert a.active_channels == n_virtual and a.data.shape == (n_virtual, kx)
        np.testing.assert_allclose(a.data, ref @ d, rtol=1e-4, atol=1e-4)
    assert g.kept_energy_fraction == pytest.approx(energy_fraction(calib, n_virtual), rel=1e-6)
    assert ctx.extras["cc.kept_energy_fraction"] == g.kept_energy_fraction
    # The stated fraction is the fraction of calibration energy the virtual coils carry.
    virt = np.concatenate([out[i].data for i in (2, 4, 5, 6)], axis=1).astype(np.complex128)
    kept = np.sum(np.abs(virt) ** 2) / np.sum(np.abs(calib.astype(np.complex128)) ** 2)
    assert kept == pytest.approx(g.kept_energy_fraction, rel=1e-4)


def test_first_lines_source_and_flush_release() -> None:
    rng = np.random.default_rng(0)
    ctx = context(header_xml(16, 16, 8))
    g = make(
        CoilCompressionGadget, ctx, n_virtual_coils=2, source="first_lines", calibration_lines=20
    )
    data = _lines(rng, 4, 16, 5)
    out = [m for ky, d in enumerate(data) for m in g.process(acquisition(d, ky=ky))]
    assert out == []
    out = list(g.flush())  # stream ended before 20 lines: estimate from the held ones
    assert len(out) == 5 and g.matrix is not None


def test_fewer_coils_than_virtual_are_zero_filled(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(1)
    ctx = context(header_xml(16, 16, 8))
    g = make(
        CoilCompressionGadget, ctx, n_virtual_coils=6, source="first_lines", calibration_lines=2
    )
    data = _lines(rng, 3, 16, 3)
    with caplog.at_level(logging.WARNING, logger="kmtr_stream.test"):
        out = [m for ky, d in enumerate(data) for m in g.process(acquisition(d, ky=ky))]
    assert len(out) == 3 and all(a.data.shape == (6, 16) for a in out)
    np.testing.assert_array_equal(out[2].data[3:], 0)
    assert g.kept_energy_fraction == pytest.approx(1.0, abs=1e-6)
    # A unitary rotation: per-sample energy across coils is preserved.
    np.testing.assert_allclose(
        np.sum(np.abs(out[2].data) ** 2, 0), np.sum(np.abs(data[2]) ** 2, 0), rtol=1e-4
    )
    assert any("only 3 receiver coils" in r.getMessage() for r in caplog.records)


def test_hold_cap_without_calibration_lines() -> None:
    rng = np.random.default_rng(2)
    ctx = context(header_xml(16, 16, 8))
    g = make(CoilCompressionGadget, ctx, n_virtual_coils=2, max_held_lines=3)
    out = [
        m for ky, d in enumerate(_lines(rng, 4, 16, 4)) for m in g.process(acquisition(d, ky=ky))
    ]
    assert len(out) == 4
