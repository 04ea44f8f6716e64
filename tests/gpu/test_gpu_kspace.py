"""The k-space math and gadgets on CuPy, compared with the NumPy path (needs a CUDA device)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from gadgets.coil_compression import CoilCompressionGadget
from gadgets.noise_prewhitening import NoisePrewhiteningGadget
from gadgets.remove_oversampling import RemoveOversamplingGadget
from gadgets.slice_buffer import SliceBufferGadget
from kmtr_stream.backend import to_numpy
from kmtr_stream.kspace.coil_compression import compression_matrix, energy_fraction
from kmtr_stream.kspace.normalisation import calibration_slice, compress_and_normalise
from kmtr_stream.kspace.oversampling import readout_crop_operator, remove_readout_oversampling
from kmtr_stream.kspace.prewhitening import (
    apply_prewhitening,
    covariance_sum,
    noise_covariance,
    prewhitening_matrix,
)
from kmtr_stream.messages import SliceKSpace
from tests.unit.kspace_streams import (
    acquisition,
    context,
    header_xml,
    make,
    noise_readouts,
    run,
    undersampled_lines,
)

pytestmark = pytest.mark.gpu


def _cp() -> Any:
    import cupy

    return cupy


def _cplx(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.mark.parametrize("coils", [3, 5, 7])
def test_prewhitening_on_gpu(coils: int) -> None:
    cp = _cp()
    rng = np.random.default_rng(coils)
    mix = _cplx(rng, (coils, coils)) + 2 * np.eye(coils, dtype=np.complex64)
    noise = mix @ _cplx(rng, (coils, 20001)) / np.float32(math.sqrt(2))
    cov_np = noise_covariance(covariance_sum(noise), noise.shape[1])
    cov_cp = noise_covariance(covariance_sum(cp.asarray(noise)), noise.shape[1])
    assert isinstance(cov_cp, cp.ndarray)
    np.testing.assert_allclose(cov_cp.get(), cov_np, rtol=1e-5, atol=1e-5)
    w_cp = prewhitening_matrix(cov_cp, 1.3)
    np.testing.assert_allclose(w_cp.get(), prewhitening_matrix(cov_np, 1.3), rtol=1e-4, atol=1e-5)
    white = apply_prewhitening(w_cp, cp.asarray(noise)).astype(cp.complex128)
    cov_w = (white @ white.conj().T / (white.shape[1] - 1)).get()
    np.testing.assert_allclose(cov_w, 1.69 * np.eye(coils), atol=1e-3)


@pytest.mark.parametrize(("n_in", "n_out"), [(256, 128), (75, 37), (101, 50)])
def test_oversampling_on_gpu(n_in: int, n_out: int) -> None:
    cp = _cp()
    data = _cplx(np.random.default_rng(n_in), (7, n_in))
    ref = remove_readout_oversampling(data, n_out)
    np.testing.assert_allclose(
        remove_readout_oversampling(cp.asarray(data), n_out).get(), ref, rtol=1e-4, atol=1e-4
    )
    op = readout_crop_operator(n_in, n_out, cp)
    np.testing.assert_allclose((cp.asarray(data) @ op).get(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("coils", "n_virtual"), [(5, 3), (7, 4), (8, 8)])
def test_compression_on_gpu(coils: int, n_virtual: int) -> None:
    cp = _cp()
    rng = np.random.default_rng(coils)
    k = _cplx(rng, (coils, 33, 17))
    region = calibration_slice(33, 8)
    a_np = compression_matrix(k[:, region, :], n_virtual)
    a_cp = compression_matrix(cp.asarray(k[:, region, :]), n_virtual, cp).get()
    # Singular vectors are unique up to a phase per vector: compare the projectors.
    np.testing.assert_allclose(a_cp.conj().T @ a_cp, a_np.conj().T @ a_np, atol=1e-4)
    e_cp = energy_fraction(cp.asarray(k[:, region, :]), n_virtual, cp)
    assert e_cp == pytest.approx(energy_fraction(k[:, region, :], n_virtual), rel=1e-5)
    v_np, _, s_np = compress_and_normalise(k, n_virtual, region)
    v_cp, _, s_cp = compress_and_normalise(cp.asarray(k), n_virtual, region)
    assert isinstance(v_cp, cp.ndarray) and s_cp == pytest.approx(s_np, rel=1e-5)
    np.testing.assert_allclose(np.abs(v_cp.get()), np.abs(v_np), rtol=1e-3, atol=1e-4)


def _stream(rng: np.random.Generator, coils: int, n_ky: int, kx_os: int) -> list[Any]:
    mix = _cplx(rng, (coils, coils)) + 2 * np.eye(coils, dtype=np.complex64)
    msgs: list[Any] = noise_readouts(rng, mix, 8, 128, dwell_us=4.0)
    mask = np.zeros(n_ky, bool)
    mask[::3] = True
    calib = np.zeros(n_ky, bool)
    calib[n_ky // 2 - 4 : n_ky // 2 + 4] = True
    for s in range(2):
        msgs += undersampled_lines(_cplx(rng, (coils, n_ky, kx_os)), mask | calib, calib, slice_=s)
    return msgs


@pytest.mark.parametrize("trigger", ["last_in_slice", "progressive"])
def test_gadget_chain_cupy_matches_numpy(trigger: str) -> None:
    cp = _cp()
    coils, n_ky, kx_os = 5, 31, 66
    xml = header_xml(kx_os, kx_os // 2, n_ky, n_slices=2)
    outs = {}
    for backend in ("numpy", "cupy"):
        ctx = context(xml, backend)
        gadgets = [
            make(NoisePrewhiteningGadget, ctx, gadget_id="nw"),
            make(RemoveOversamplingGadget, ctx, gadget_id="ro"),
            make(
                SliceBufferGadget,
                ctx,
                gadget_id="sb",
                trigger=trigger,
                coverage_fraction=0.3,
                progressive_fractions=(0.4,),
            ),
        ]
        outs[backend] = run(gadgets, _stream(np.random.default_rng(1), coils, n_ky, kx_os))
    assert len(outs["numpy"]) == len(outs["cupy"]) > 0
    for a, b in zip(outs["numpy"], outs["cupy"], strict=True):
        assert isinstance(a, SliceKSpace) and isinstance(b, SliceKSpace)
        assert isinstance(b.kspace, cp.ndarray) and b.kspace.dtype == cp.complex64
        assert (a.slice, a.trigger, a.final, a.lines_used) == (
            b.slice,
            b.trigger,
            b.final,
            b.lines_used,
        )
        np.testing.assert_array_equal(to_numpy(b.mask), a.mask)
        np.testing.assert_allclose(to_numpy(b.kspace), a.kspace, rtol=1e-4, atol=1e-5)


def test_coil_compression_and_virtual_coils_on_gpu() -> None:
    cp = _cp()
    ctx = context(header_xml(16, 16, 24), "cupy")
    cc = make(
        CoilCompressionGadget,
        ctx,
        gadget_id="cc",
        n_virtual_coils=3,
        source="first_lines",
        calibration_lines=4,
    )
    sb = make(SliceBufferGadget, ctx, gadget_id="sb", virtual_coils=2, calibration_lines=8)
    rng = np.random.default_rng(2)
    k = _cplx(rng, (6, 24, 16))
    out = run([cc, sb], [acquisition(k[:, ky, :], ky=ky) for ky in range(24)])
    (m,) = out
    assert isinstance(m.kspace, cp.ndarray) and m.kspace.shape == (2, 24, 16)
    assert cc.kept_energy_fraction is not None and 0.0 < cc.kept_energy_fraction <= 1.0
