"""The gadget contract: built with the stream's header, stateful gadgets say what they hold."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest

from gadgets.coil_compression import CoilCompressionGadget
from gadgets.input_validation import InputValidationGadget
from gadgets.noise_prewhitening import NoisePrewhiteningGadget
from gadgets.recorder import RecorderGadget
from gadgets.slice_buffer import SliceBufferGadget
from gadgets.subject_aggregation import SubjectAggregationGadget
from kmtr_stream.chain import registry
from kmtr_stream.chain.gadget import ChainContext, Gadget, StreamHeader
from kmtr_stream.errors import KmtrError, ProtocolError
from kmtr_stream.messages import SliceResult, XmlHeader
from tests.unit.chain_helpers import HEADER, HEADER_XML
from tests.unit.kspace_streams import (
    acquisition,
    context,
    header_xml,
    make,
    noise_readouts,
)


def _overrides(cls: type, name: str) -> bool:
    return getattr(cls, name) is not getattr(Gadget, name)


def test_a_gadget_cannot_be_built_without_a_header() -> None:
    with pytest.raises(TypeError, match="header"):
        ChainContext()  # type: ignore[call-arg]
    with pytest.raises(KmtrError, match="parsed ISMRMRD header and its EncodingGeometry"):
        ChainContext(header=None, geometry=HEADER.geometry)
    with pytest.raises(KmtrError, match="EncodingGeometry"):
        ChainContext(header=HEADER.header, geometry=None)  # type: ignore[arg-type]
    for name, cls in registry.registered().items():
        if name.startswith("_test"):
            continue
        with pytest.raises(KmtrError, match="needs a ChainContext built from the stream's header"):
            cls("g", cls.Params(), None)  # type: ignore[arg-type]


def test_the_context_carries_the_parsed_header_and_its_geometry() -> None:
    ctx = context(header_xml(64, 32, 24, n_slices=3, n_phases=5, rnbw=0.7))
    g = make(SliceBufferGadget, ctx)
    assert g.geo is ctx.geometry
    assert (ctx.geometry.encoded_x, ctx.geometry.recon_x, ctx.geometry.n_ky) == (64, 32, 24)
    assert (ctx.geometry.n_slices, ctx.geometry.n_phases) == (3, 5)
    nw = make(NoisePrewhiteningGadget, ctx, noise_bandwidth_factor=0.5)
    assert nw.receiver_noise_bandwidth == ctx.geometry.receiver_noise_bandwidth == 0.7
    # Without the header value the parameter is the fallback.
    bare = context(header_xml(64, 32, 24))
    assert bare.geometry.receiver_noise_bandwidth is None
    assert make(NoisePrewhiteningGadget, bare, noise_bandwidth_factor=0.5)\
        .receiver_noise_bandwidth == 0.5


def test_stream_header_parse_names_what_is_wrong() -> None:
    sh = StreamHeader.parse(HEADER_XML)
    assert sh.xml == HEADER_XML and sh.geometry.n_ky == 12
    with pytest.raises(ProtocolError, match="does not parse"):
        StreamHeader.parse("<not-ismrmrd/>")


def test_no_gadget_keeps_an_on_header_hook() -> None:
    assert not hasattr(Gadget, "on_header")
    for name, cls in registry.registered().items():
        assert not hasattr(cls, "on_header"), name


def _slice_result(s: int, p: int) -> SliceResult:
    return SliceResult(
        slice=s, phase=p, repetition=0, labels=np.zeros((8, 8), np.int16),
        latent=np.zeros(4, np.float32), lines_used=8, final=True, n_slices=2, n_phases=2,
        voxel_size_mm=(1.0, 1.0, 8.0), timings_ms={}, last_in_measurement=False,
    )


def _held_state(name: str, tmp_path: Path) -> tuple[Gadget, list[Any]]:
    """A built gadget of type ``name`` and messages after which it holds something."""
    ctx = context(header_xml(8, 8, 8, n_slices=2, n_phases=2))
    rng = np.random.default_rng(0)
    lines = [acquisition(np.ones((3, 8)), ky=ky) for ky in range(3)]  # no LAST_IN_SLICE
    if name == "slice_buffer":
        return make(SliceBufferGadget, ctx), lines
    if name == "kmtr_streaming":
        from gadgets.kmtr_streaming import KmtrStreamingGadget

        # 4 coils, as the network takes them (no compression)
        return make(KmtrStreamingGadget, ctx, virtual_coils=0), [
            acquisition(np.ones((4, 8)), ky=ky) for ky in range(3)
        ]
    if name == "input_validation":
        return make(InputValidationGadget, ctx), [acquisition(np.full((3, 8), np.nan))]
    if name == "coil_compression":
        return make(CoilCompressionGadget, ctx, n_virtual_coils=2), lines
    if name == "noise_prewhitening":
        return make(NoisePrewhiteningGadget, ctx), noise_readouts(rng, np.eye(3), 2, 8)
    if name == "subject_aggregation":
        return make(SubjectAggregationGadget, ctx), [_slice_result(0, 0)]
    if name == "recorder":
        g = make(RecorderGadget, ctx, path=str(tmp_path / "r.h5"))
        return g, [XmlHeader(HEADER_XML), acquisition(np.ones((3, 8)))]
    raise AssertionError(f"no held-state stream for gadget type {name!r}: add one here")


def test_every_stateful_gadget_reports_its_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Stateful: holds data between messages (it flushes, or accumulates before it acts).
    stateful = {
        name for name, cls in registry.registered().items()
        if not name.startswith("_test") and _overrides(cls, "flush")
    } | {"noise_prewhitening"}
    assert {"slice_buffer", "coil_compression", "subject_aggregation", "recorder"} <= stateful
    for name in sorted(stateful):
        cls = registry.lookup(name)
        assert _overrides(cls, "describe_state"), f"{name} holds state but cannot describe it"
        g, msgs = _held_state(name, tmp_path)
        if name != "recorder":  # the recorder holds its open file from the start
            assert g.describe_state() is None, name  # nothing held yet
        with caplog.at_level(logging.ERROR):
            for m in msgs:
                list(g.process(m))
        state = g.describe_state()
        assert isinstance(state, str) and state, name
        if name != "noise_prewhitening":
            list(g.flush())
            assert g.describe_state() is None, f"{name} still reports {state!r} after flush"
        else:
            list(g.process(acquisition(np.ones((3, 8)))))  # the first imaging line fixes it
            assert g.describe_state() is None


def test_state_texts_name_what_is_held(tmp_path: Path) -> None:
    g, msgs = _held_state("slice_buffer", tmp_path)
    for m in msgs:
        list(g.process(m))
    assert g.describe_state() == "1 slice buffer open (3 lines)"
    cc, msgs = _held_state("coil_compression", tmp_path)
    for m in msgs:
        list(cc.process(m))
    assert cc.describe_state() == "3 readouts held for the compression matrix"
    nw, msgs = _held_state("noise_prewhitening", tmp_path)
    for m in msgs:
        list(nw.process(m))
    assert nw.describe_state() == "16 noise samples of 3 coils, prewhitener not fixed"
    agg, msgs = _held_state("subject_aggregation", tmp_path)
    list(agg.process(msgs[0]))
    assert agg.describe_state() == "1 slice results held for the subject result"


def test_slice_spacing_param_overrides_only_dz() -> None:
    ctx = context(header_xml(8, 8, 8, fov_mm=(160.0, 160.0, 6.0)))
    g = make(SliceBufferGadget, ctx, slice_spacing_mm=10.0)
    assert g.geo.voxel_size_mm == (20.0, 20.0, 10.0)
    assert g.geo == dataclasses.replace(ctx.geometry, voxel_size_mm=(20.0, 20.0, 10.0))
    assert ctx.geometry.voxel_size_mm == (20.0, 20.0, 6.0)
    assert ismrmrd.Acquisition in g.handles
