"""The simulator's acquisitions of one subject through the gadgets vs its own k-space and mask."""

from __future__ import annotations

from typing import Any

import ismrmrd.xsd
import numpy as np
import pytest

from gadgets.noise_prewhitening import NoisePrewhiteningGadget
from gadgets.remove_oversampling import RemoveOversamplingGadget
from gadgets.slice_buffer import SliceBufferGadget
from kmtr_stream.chain.gadget import ChainContext, Gadget
from kmtr_stream.messages import SliceKSpace
from tests.unit.kspace_streams import run

scan_mod = pytest.importorskip("simulator.scan")
sim_config = pytest.importorskip("simulator.config")
sim_kspace = pytest.importorskip("simulator.kspace")
if not hasattr(scan_mod, "simulate_scan"):
    pytest.skip("simulator.scan.simulate_scan not available", allow_module_level=True)


@pytest.fixture(scope="module")
def scan() -> tuple[Any, Any, list[Any]]:
    cfg = sim_config.SimConfig(nx=32, ny=32, n_slices=2, n_phases=3, n_coils=5, n_calib=8, accel=3)
    sc = scan_mod.simulate_scan(7, 0, cfg)
    return cfg, sc, list(sc.acquisitions(cfg))


def _gadgets(xml: str, prewhiten: bool, **buffer: Any) -> tuple[ChainContext, list[Gadget]]:
    header = ismrmrd.xsd.CreateFromDocument(xml)
    ctx = ChainContext.from_header(header)
    gs: list[Gadget] = []
    if prewhiten:
        gs.append(NoisePrewhiteningGadget("nw", NoisePrewhiteningGadget.Params(), ctx))
    gs.append(RemoveOversamplingGadget("ro", RemoveOversamplingGadget.Params(), ctx))
    gs.append(SliceBufferGadget("sb", SliceBufferGadget.Params(**buffer), ctx))
    return ctx, gs


def test_buffer_reproduces_simulator_kspace(scan: tuple[Any, Any, list[Any]]) -> None:
    cfg, sc, acqs = scan
    _, gs = _gadgets(sc.xml(cfg), prewhiten=False, normalise=False)
    out = run(gs, acqs)
    assert len(out) == cfg.n_slices * cfg.n_phases and all(isinstance(m, SliceKSpace) for m in out)
    mask = sc.plan.mask
    for m in out:
        expected = sim_kspace.remove_readout_oversampling(sc.kspace[m.phase, m.slice], 2)
        np.testing.assert_array_equal(m.mask, mask)
        np.testing.assert_allclose(m.kspace, expected * mask[None, :, None], rtol=1e-5, atol=1e-5)
        assert (m.n_slices, m.n_phases, m.trigger, m.final) == (2, 3, "last_in_slice", True)
        assert m.voxel_size_mm[:2] == pytest.approx(cfg.voxel_size_mm[:2])
    assert [m.last_in_measurement for m in out] == [False] * 5 + [True]


def test_prewhitened_buffer_with_known_matrix(scan: tuple[Any, Any, list[Any]]) -> None:
    cfg, sc, acqs = scan
    _, gs = _gadgets(sc.xml(cfg), prewhiten=True, normalise=False)
    out = run(gs, acqs)
    nw = gs[0]
    assert isinstance(nw, NoisePrewhiteningGadget)
    noise = np.concatenate(list(sc.noise), axis=1).astype(np.complex128)
    cov = noise @ noise.conj().T / (noise.shape[1] - 1)
    w = np.linalg.inv(np.linalg.cholesky(cov)) * nw.scale
    np.testing.assert_allclose(nw.prewhitener, w, rtol=1e-4, atol=1e-5)
    for m in out:
        k = sim_kspace.remove_readout_oversampling(sc.kspace[m.phase, m.slice], 2)
        expected = np.einsum("dc,cyx->dyx", w, k) * sc.plan.mask[None, :, None]
        np.testing.assert_allclose(m.kspace, expected, rtol=1e-4, atol=1e-4)


def test_training_equivalent_chain(scan: tuple[Any, Any, list[Any]]) -> None:
    cfg, sc, acqs = scan
    _, gs = _gadgets(sc.xml(cfg), prewhiten=True, virtual_coils=4, calibration_lines=cfg.n_calib)
    out = run(gs, acqs)
    nw = gs[0]
    assert isinstance(nw, NoisePrewhiteningGadget)
    w = nw.prewhitener
    for m in out:
        k = sim_kspace.remove_readout_oversampling(sc.kspace[m.phase, m.slice], 2)
        kw = np.einsum("dc,cyx->dyx", w, k).astype(np.complex64) * sc.plan.mask[None, :, None]
        ref, _, _ = sim_kspace.virtual_coil_buffer(kw, 4, cfg.n_calib)
        assert m.kspace.shape == ref.shape == (4, cfg.ny, cfg.nx)
        np.testing.assert_allclose(m.kspace, ref, rtol=1e-3, atol=1e-3)
