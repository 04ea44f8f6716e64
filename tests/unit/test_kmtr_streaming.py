"""Streaming-native k-MTR (per-line ky-mix) against the batch path, and the batcher."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest
import torch

from kmtr_stream.chain import registry
from kmtr_stream.chain.config import load_chain_config
from kmtr_stream.chain.gadget import ChainContext, StreamHeader
from kmtr_stream.chain.stages import run_gadgets
from kmtr_stream.messages import SliceResult
from kmtr_stream.model import KMTRModel, ModelConfig
from kmtr_stream.model.batching import CombiningBatcher, shared_batcher
from kmtr_stream.model.kspace_encoder import KyMixAccumulator
from simulator.config import SimConfig
from simulator.dataset import subject_id_for
from simulator.scan import simulate_scan

ROOT = Path(__file__).resolve().parents[2]


def test_accumulated_mix_equals_aggregate() -> None:
    """Tokens added one at a time give the features ``aggregate`` gives on all of them."""
    torch.manual_seed(1)
    cfg = ModelConfig(n_coils=3, n_ky=10, n_kx=6, ny=10, nx=6, channels=(4, 8), latent_dim=8)
    fe = KMTRModel(cfg, with_image_branch=False).frontend.eval()
    lines = torch.randn(7, 3, 6, dtype=torch.complex64)
    ky = torch.tensor([0, 2, 3, 5, 6, 8, 9])
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, ky] = True
    with torch.no_grad():
        want = fe.aggregate(fe.encode_lines(lines)[None], ky[None], mask)
        acc = KyMixAccumulator(fe, 3)
        for line, k in zip(lines, ky.tolist(), strict=True):
            acc.add_line(line, k)
        mixed = acc.compressed(None, 1.0)[None]
        got = fe.features_from_mixed(mixed.real, mixed.imag, mask)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("flush_every", [1, 3, 8])
def test_ky_mix_of_lines_equals_a_numpy_reference_and_lines_come_back_out(
    flush_every: int,
) -> None:
    """sum_l wy[h, :, ky_l] (outer) (wx[h] @ line_l): the frontend's linear part, in float64."""
    torch.manual_seed(2)
    cfg = ModelConfig(n_coils=3, n_ky=9, n_kx=7, ny=9, nx=5, channels=(4, 8), latent_dim=8,
                      frontend_init="random")
    fe = KMTRModel(cfg, with_image_branch=False).frontend.eval()
    lines = torch.randn(4, 3, 7, dtype=torch.complex64)
    ky = [1, 4, 5, 8]
    wx = fe.wx.detach().double().numpy()
    wy = fe.wy.detach().double().numpy()
    wx_c, wy_c = wx[..., 0] + 1j * wx[..., 1], wy[..., 0] + 1j * wy[..., 1]  # (h, nx, kx)
    want = sum(
        np.einsum("hy,hcx->hcyx", wy_c[:, :, k], np.einsum("hxk,ck->hcx", wx_c, ln.numpy()))
        for ln, k in zip(lines, ky, strict=True)
    )
    acc = KyMixAccumulator(fe, 3, flush_every=flush_every)
    with torch.no_grad():
        for line, k in zip(lines, ky, strict=True):
            acc.add_line(line, k)
        # Lines still waiting for a batch are folded in when the sum is read.
        assert len(acc._lines) == len(lines) % flush_every
        np.testing.assert_allclose(acc.sum.numpy(), want, rtol=1e-4, atol=1e-4)
        acc.add_line(lines[2], ky[2], sign=-1.0)  # a repeated ky takes the earlier line out
    np.testing.assert_allclose(acc.sum.numpy(), want - np.einsum(
        "hy,hcx->hcyx", wy_c[:, :, ky[2]], np.einsum("hxk,ck->hcx", wx_c, lines[2].numpy())),
        rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("n_acq", "fov_acq"), [(11, 200.0), (6, 200.0), (9, 230.0)])
def test_readout_weights_equal_resampling_each_line_then_encoding(
    n_acq: int, fov_acq: float
) -> None:
    """Acquired lines through ``line_plan``'s one operator give the mix of lines first put on
    the model grid (crop, zero-pad, or interpolation along kx) and then encoded."""
    from kmtr_stream.kspace.resample import axis_map
    from kmtr_stream.model.kspace_encoder import readout_weights
    from kmtr_stream.model.streaming import kx_operator

    torch.manual_seed(3)
    cfg = ModelConfig(n_coils=3, n_ky=9, n_kx=7, ny=9, nx=5, channels=(4, 8), latent_dim=8,
                      frontend_init="random")
    fe = KMTRModel(cfg, with_image_branch=False).frontend.eval()
    kx = axis_map(n_acq, fov_acq, 7, 200.0)
    lines = np.random.default_rng(0).standard_normal((4, 3, n_acq, 2)).astype(np.float32)
    acq = lines[..., 0] + 1j * lines[..., 1]
    if kx.matrix is None:  # the reference resampling of an index map: crop or zero-pad
        model = np.where(kx.index >= 0, acq[..., np.maximum(kx.index, 0)], 0)
    else:
        model = acq @ kx.matrix.T
    ky = [0, 3, 4, 7]
    ref = KyMixAccumulator(fe, 3)
    got = KyMixAccumulator(fe, 3, readout_weights=readout_weights(
        fe, torch.as_tensor(kx_operator(kx, n_acq))))
    with torch.no_grad():
        for a, m, k in zip(acq, model, ky, strict=True):
            ref.add_line(torch.as_tensor(m.astype(np.complex64)), k)
            got.add_line(torch.as_tensor(a.astype(np.complex64)), k)
        torch.testing.assert_close(got.sum, ref.sum, rtol=1e-4, atol=1e-5)


def test_compressed_mix_equals_compressing_the_coils_in_numpy() -> None:
    """``compressed(A, s)`` is ``A @ coils / s`` of the running sum (float64 reference)."""
    torch.manual_seed(4)
    cfg = ModelConfig(n_coils=3, n_ky=9, n_kx=7, ny=9, nx=5, channels=(4, 8), latent_dim=8,
                      frontend_init="random")
    fe = KMTRModel(cfg, with_image_branch=False).frontend.eval()
    acc = KyMixAccumulator(fe, 5)
    with torch.no_grad():
        for k in (0, 2, 6):
            acc.add_line(torch.randn(5, 7, dtype=torch.complex64), k)
        total = acc.sum.numpy().astype(np.complex128)
        a = torch.randn(3, 5, dtype=torch.complex64)
        got = acc.compressed(a, 2.5).numpy()
    want = np.einsum("vc,hcyx->hvyx", a.numpy().astype(np.complex128), total) / 2.5
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_ky_mix_refuses_an_empty_batch() -> None:
    cfg = ModelConfig(n_coils=3, n_ky=9, n_kx=7, ny=9, nx=5, channels=(4, 8), latent_dim=8)
    fe = KMTRModel(cfg, with_image_branch=False).frontend
    with pytest.raises(ValueError, match="flush_every"):
        KyMixAccumulator(fe, 3, flush_every=0)


def _analysis(config: str, header: str) -> list[Any]:
    """The chain's gadgets up to its network, without input validation: it would refuse
    the repeated lines that the comparisons below feed both chains on purpose."""
    spec = load_chain_config(ROOT / "configs" / config)
    ctx = ChainContext.for_stream(StreamHeader.parse(header))
    specs = [g for g in spec.gadgets[:-1] if g.type_name != "input_validation"]
    return [registry.lookup(g.type_name)(g.id, g.params, ctx) for g in specs]


def _results(gadgets: list[Any], acqs: list[ismrmrd.Acquisition]) -> list[SliceResult]:
    return [m for m in run_gadgets(gadgets, acqs, raise_errors=True)
            if isinstance(m, SliceResult)]


def _run(config: str, header: str, acqs: list[ismrmrd.Acquisition]) -> list[SliceResult]:
    return _results(_analysis(config, header), acqs)


def _scan(cfg: SimConfig) -> tuple[str, list[ismrmrd.Acquisition]]:
    scan = simulate_scan(subject_id_for("test", 1), 7, cfg, diagnosis=1)
    return scan.xml(cfg), list(scan.acquisitions(cfg))


def _compare(batch: list[SliceResult], stream: list[SliceResult]) -> None:
    assert [(r.slice, r.phase, r.lines_used) for r in stream] == [
        (r.slice, r.phase, r.lines_used) for r in batch
    ]
    for b, s in zip(batch, stream, strict=True):
        assert np.mean(b.labels == s.labels) > 0.995
        np.testing.assert_allclose(s.latent, b.latent, rtol=1e-3, atol=2e-3)


@pytest.fixture(scope="module")
def small() -> SimConfig:
    return SimConfig(n_slices=2, n_phases=2, accel=4)


def test_streaming_chain_equals_batch_chain(small: SimConfig) -> None:
    xml, acqs = _scan(small)
    # A repeated line (new data at a ky already acquired) replaces the earlier one.
    first = next(i for i, a in enumerate(acqs) if a.idx.kspace_encode_step_1 == 30)
    again = ismrmrd.Acquisition(acqs[first].getHead(), acqs[first + 1].data.copy())
    again.idx.kspace_encode_step_1 = 30
    acqs.insert(first + 2, again)
    batch = _run("kmtr.toml", xml, acqs)
    stream = _run("kmtr_streaming.toml", xml, acqs)
    assert len(stream) == small.n_slices * small.n_phases
    assert all(r.timings_ms["finalize"] >= 0 for r in stream)
    _compare(batch, stream)


def _run_streaming(
    header: str, acqs: list[ismrmrd.Acquisition]
) -> tuple[list[SliceResult], Any, int]:
    """The streaming chain's results, its kmtr_streaming gadget (for its counters) and the
    forward passes its (shared) batcher ran for them."""
    gadgets = _analysis("kmtr_streaming.toml", header)
    gadget = next(g for g in gadgets if g.type_name == "kmtr_streaming")
    before = gadget.batcher.batches
    return _results(gadgets, acqs), gadget, gadget.batcher.batches - before


@pytest.mark.parametrize("ordering", ["linear", "centre-out"])
def test_calibration_terms_are_ready_before_the_last_line(ordering: str) -> None:
    """Once the scan has left the calibration region its terms are computed, and the
    result is the batch chain's: after the last line only the product and trunk remain."""
    cfg = SimConfig(n_slices=2, n_phases=2, accel=4, ordering=ordering)
    xml, acqs = _scan(cfg)
    stream, gadget, passes = _run_streaming(xml, acqs)
    assert len(stream) == 4 and gadget.streamed == 4
    assert gadget.early_terms == 4
    # "batch" is the size of the forward pass that ran the slice: n slices say n per pass
    sizes = [int(r.timings_ms["batch"]) for r in stream]
    assert sum(1 / n for n in sizes) == pytest.approx(passes)
    _compare(_run("kmtr.toml", xml, acqs), stream)


def test_a_line_back_in_the_calibration_region_recomputes_its_terms() -> None:
    """New data at a central ky after the scan left the region (just before the slice's
    last line) makes the early terms stale: that slice computes them afresh, as batch does."""
    cfg = SimConfig(n_slices=2, n_phases=2, accel=4)
    xml, acqs = _scan(cfg)
    last = next(i for i, a in enumerate(acqs) if a.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE))
    centre = next(a for a in acqs[:last] if a.idx.kspace_encode_step_1 == 32
                  and a.idx.slice == acqs[last].idx.slice and a.idx.phase == acqs[last].idx.phase)
    again = ismrmrd.Acquisition(centre.getHead(), (centre.data * 3.0).astype(np.complex64))
    again.clear_all_flags()
    acqs.insert(last, again)
    stream, gadget, _ = _run_streaming(xml, acqs)
    assert gadget.streamed == 4 and gadget.early_terms == 3
    _compare(_run("kmtr.toml", xml, acqs), stream)


def test_other_field_of_view_takes_the_batch_path_with_the_same_outputs() -> None:
    cfg = SimConfig(n_slices=2, n_phases=2, accel=4, fov_y_mm=220.0)
    xml, acqs = _scan(cfg)
    stream = _run("kmtr_streaming.toml", xml, acqs)
    assert stream and all("finalize" not in r.timings_ms for r in stream)
    _compare(_run("kmtr.toml", xml, acqs), stream)


def test_batcher_runs_concurrent_requests_together_and_in_order() -> None:
    gate = threading.Event()
    calls: list[list[int]] = []

    def fn(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            gate.wait(5)  # hold the first batch while the others queue up
        return [x * 10 for x in items]

    b: CombiningBatcher[int, int] = CombiningBatcher(fn, max_batch=8)
    out: dict[int, Any] = {}
    first = threading.Thread(target=lambda: out.__setitem__(0, b.run(0)))
    first.start()
    while not calls:
        threading.Event().wait(0.001)
    others = [threading.Thread(target=lambda i=i: out.__setitem__(i, b.run(i))) for i in (1, 2, 3)]
    for t in others:
        t.start()
    while len(b._pending) < 3:
        threading.Event().wait(0.001)
    gate.set()
    for t in [first, *others]:
        t.join(5)
    assert out == {0: 0, 1: 10, 2: 20, 3: 30}
    assert calls[0] == [0] and sorted(calls[1]) == [1, 2, 3] and b.batches == 2


def test_a_caller_returns_once_its_own_items_are_done_while_others_still_wait() -> None:
    """Under load no caller is held serving the others' batches: the first caller's
    item runs, it returns while the next batch (another caller's) still runs, and
    that batch runs in a waiting caller's thread, not the first one's."""
    gates = {0: threading.Event(), 1: threading.Event()}
    ran_in: dict[int, str] = {}

    def fn(items: list[int]) -> list[int]:
        for x in items:
            ran_in[x] = threading.current_thread().name
            if x in gates:
                gates[x].wait(5)
        return [x + 1 for x in items]

    b: CombiningBatcher[int, int] = CombiningBatcher(fn, max_batch=1)
    out: dict[int, int] = {}
    first = threading.Thread(target=lambda: out.__setitem__(0, b.run(0)), name="first")
    first.start()
    while 0 not in ran_in:
        threading.Event().wait(0.001)
    others = [threading.Thread(target=lambda i=i: out.__setitem__(i, b.run(i)), name=f"c{i}")
              for i in (1, 2)]
    for t in others:
        t.start()
    while len(b._pending) < 2:
        threading.Event().wait(0.001)
    gates[0].set()
    first.join(5)
    assert not first.is_alive() and out == {0: 1}  # returned while item 1 is still held
    while 1 not in ran_in:
        threading.Event().wait(0.001)
    assert ran_in[1] in ("c1", "c2")
    gates[1].set()
    for t in others:
        t.join(5)
    assert out == {0: 1, 1: 2, 2: 3} and ran_in[2] in ("c1", "c2")
    assert b.batches == 3 and b._running == 0 and not b._pending


def test_batcher_reports_the_failure_to_every_caller_of_the_batch() -> None:
    def fn(items: list[int]) -> list[int]:
        raise ValueError("bad batch")

    b: CombiningBatcher[int, int] = CombiningBatcher(fn)
    with pytest.raises(ValueError, match="bad batch"):
        b.run_many([1, 2])
    assert b._running == 0


def test_two_lanes_run_two_batches_at_once_and_later_requests_still_batch() -> None:
    """With two lanes a second caller runs while the first batch is held; a third and
    fourth, arriving while both lanes are busy, share one batch afterwards."""
    release = threading.Event()
    calls: list[list[int]] = []
    lock = threading.Lock()

    def fn(items: list[int]) -> list[int]:
        with lock:
            calls.append(list(items))
        if len(calls) <= 2:
            release.wait(5)  # hold both lanes
        return [x + 100 for x in items]

    b: CombiningBatcher[int, int] = CombiningBatcher(fn, max_batch=8, lanes=2)
    out: dict[int, Any] = {}

    def call(i: int) -> None:
        out[i] = b.run(i)

    first = [threading.Thread(target=call, args=(i,)) for i in (0, 1)]
    for t in first:
        t.start()
    while len(calls) < 2:  # both lanes busy at once
        threading.Event().wait(0.001)
    later = [threading.Thread(target=call, args=(i,)) for i in (2, 3)]
    for t in later:
        t.start()
    while len(b._pending) < 2:
        threading.Event().wait(0.001)
    release.set()
    for t in first + later:
        t.join(5)
    assert out == {0: 100, 1: 101, 2: 102, 3: 103}
    assert sorted(len(c) for c in calls) == [1, 1, 2] and b.largest == 2 and b._running == 0
    with pytest.raises(ValueError, match="lanes"):
        CombiningBatcher(fn, lanes=0)


def test_shared_batcher_is_one_per_owner_and_says_when_a_chain_asks_for_other_settings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fn(items: list[int]) -> list[int]:
        return items

    a, b = object(), object()
    first = shared_batcher(a, fn, max_batch=8, lanes=1)
    assert shared_batcher(a, fn, max_batch=8, lanes=1) is first and not caplog.records
    assert shared_batcher(b, fn, max_batch=4, lanes=2) is not first
    with caplog.at_level("WARNING", logger="kmtr_stream.model.batching"):
        assert shared_batcher(a, fn, max_batch=8, lanes=2) is first
        assert shared_batcher(a, fn, max_batch=8, lanes=2) is first  # logged once
    (rec,) = caplog.records
    assert "already runs with max_batch=8, lanes=1" in rec.getMessage()
    assert "max_batch=8, lanes=2 are not used" in rec.getMessage()
    assert (first.max_batch, first.lanes) == (8, 1)


@pytest.mark.parametrize("ordering", ["linear", "centre-out"])
def test_lines_are_folded_in_on_the_virtual_coils(ordering: str) -> None:
    """With 16 receiver coils the running mix holds the 4 virtual coils: lines that come
    before the calibration region wait in the buffer and are folded in once its matrix
    is known, so the mix is built once per slice during the scan and the results are
    still the batch chain's."""
    cfg = SimConfig(n_slices=2, n_phases=2, accel=4, n_coils=16, ordering=ordering)
    xml, acqs = _scan(cfg)
    gadgets = _analysis("kmtr_streaming.toml", xml)
    gadget = next(g for g in gadgets if g.type_name == "kmtr_streaming")
    last = next(i for i, a in enumerate(acqs) if a.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE))
    partial = run_gadgets(gadgets, acqs[:last], flush=False, raise_errors=True)
    assert not [m for m in partial if isinstance(m, SliceResult)]
    (acc,) = gadget.open.values()
    assert acc.mix is not None and acc.mix.sum.shape[1] == 4  # (transforms, virtual, y, x)
    assert acc.rebuilt == 1
    stream = _results(gadgets, acqs[last:])
    assert gadget.streamed == 4 and gadget.early_terms == 4
    _compare(_run("kmtr.toml", xml, acqs), stream)
