"""A dataset written by another tool (ISMRMRD's own Shepp-Logan generator) through the gadgets.

``ismrmrd_generate_cartesian_shepp_logan`` (Debian/Ubuntu package
``ismrmrd-tools``) writes a Cartesian stream with a noise readout
(``-C``), readout oversampling 2 (``-O 2``), acceleration 4 (``-a 4``, one
repetition per undersampling offset) and a calibration region
(``-w``, lines flagged parallel-calibration). The stream goes through the
k-space gadgets called directly and through a chain run by ``ChainRunner``.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ismrmrd
import ismrmrd.xsd
import numpy as np
import pytest

from gadgets.coil_compression import CoilCompressionGadget
from gadgets.noise_prewhitening import NoisePrewhiteningGadget
from gadgets.remove_oversampling import RemoveOversamplingGadget
from gadgets.slice_buffer import SliceBufferGadget
from kmtr_stream.chain.gadget import ChainContext, Gadget
from kmtr_stream.chain.registry import register
from kmtr_stream.chain.stages import run_gadgets
from kmtr_stream.messages import ErrorReport, Result, SliceKSpace, XmlHeader

TOOL = "ismrmrd_generate_cartesian_shepp_logan"
MATRIX, COILS, ACCEL, CALIB = 64, 5, 4, 16

pytestmark = pytest.mark.skipif(
    shutil.which(TOOL) is None,
    reason=f"{TOOL} not found: install the Debian/Ubuntu package 'ismrmrd-tools'",
)


@pytest.fixture(scope="module")
def shepp_logan(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[ismrmrd.Acquisition]]:
    out = tmp_path_factory.mktemp("third_party") / "shepp_logan.h5"
    subprocess.run(
        [
            TOOL,
            "-m",
            str(MATRIX),
            "-c",
            str(COILS),
            "-O",
            "2",
            "-a",
            str(ACCEL),
            "-w",
            str(CALIB),
            "-C",
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ds = ismrmrd.Dataset(str(out), "dataset", False)
    try:
        xml = ds.read_xml_header()
        xml = xml.decode() if isinstance(xml, bytes) else xml
        acqs = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    finally:
        ds.close()
    return xml, acqs


def _run(gadgets: list[Gadget], messages: Iterable[Any]) -> list[Any]:
    return run_gadgets(gadgets, messages, raise_errors=True)


def test_stream_has_what_the_test_needs(shepp_logan: tuple[str, list[ismrmrd.Acquisition]]) -> None:
    _, acqs = shepp_logan
    assert any(a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) for a in acqs)
    assert any(a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) for a in acqs)
    assert {a.number_of_samples for a in acqs} == {2 * MATRIX}


@pytest.mark.parametrize("trigger", ["coverage", "flush"])
def test_gadgets_called_directly(
    shepp_logan: tuple[str, list[ismrmrd.Acquisition]], trigger: str
) -> None:
    xml, acqs = shepp_logan
    header = ismrmrd.xsd.CreateFromDocument(xml)
    ctx = ChainContext.from_header(header)
    nw = NoisePrewhiteningGadget("nw", NoisePrewhiteningGadget.Params(), ctx)
    ro = RemoveOversamplingGadget("ro", RemoveOversamplingGadget.Params(), ctx)
    cc = CoilCompressionGadget("cc", CoilCompressionGadget.Params(n_virtual_coils=4), ctx)
    sb = SliceBufferGadget(
        "sb", SliceBufferGadget.Params(trigger=trigger, coverage_fraction=0.3, normalise=False), ctx
    )
    gadgets: list[Gadget] = [nw, ro, cc, sb]
    out = _run(gadgets, acqs)
    assert not [m for m in out if isinstance(m, ErrorReport)]
    assert nw.prewhitener is not None and nw.n_noise_samples == 2 * MATRIX
    assert cc.kept_energy_fraction is not None and 0.5 < cc.kept_energy_fraction <= 1.0
    assert all(isinstance(m, SliceKSpace) for m in out)
    assert sorted(m.repetition for m in out) == list(range(ACCEL))
    for m in out:
        assert m.kspace.shape == (4, MATRIX, MATRIX) and m.final and m.trigger == trigger
        lo = MATRIX // 2 - CALIB // 2
        assert m.mask[lo : lo + CALIB].all()  # the calibration region is in every buffer
    if trigger == "flush":
        # Every repetition has one undersampling offset: together they cover all of ky.
        union = np.logical_or.reduce([np.asarray(m.mask) for m in out])
        assert union.all()
        for m in out:
            assert m.lines_used == MATRIX // ACCEL + CALIB - CALIB // ACCEL


@dataclass(frozen=True)
class _NoParams:
    pass


@register("_test_kspace_summary")
class KSpaceSummaryGadget(Gadget):
    """Test gadget: reports each SliceKSpace as a wire Result (the chain end drops internals)."""

    Params = _NoParams
    handles = (SliceKSpace,)

    def process(self, message: Any) -> Iterable[Any]:
        m: SliceKSpace = message
        yield Result(
            kind="kspace",
            body={
                "repetition": m.repetition,
                "shape": list(m.kspace.shape),
                "lines": m.lines_used,
                "trigger": m.trigger,
                "final": m.final,
                "last": m.last_in_measurement,
                "finite": bool(np.isfinite(np.asarray(m.kspace)).all()),
            },
        )


CHAIN = """
[chain]
name = "third_party"
backend = "numpy"

[[gadgets]]
id = "nw"
type = "noise_prewhitening"

[[gadgets]]
id = "ro"
type = "remove_oversampling"

[[gadgets]]
id = "sb"
type = "slice_buffer"
[gadgets.params]
trigger = "progressive"
coverage_fraction = 0.3
progressive_fractions = [0.4]
virtual_coils = 4

[[gadgets]]
id = "sum"
type = "_test_kspace_summary"
"""


def test_through_a_chain(shepp_logan: tuple[str, list[ismrmrd.Acquisition]]) -> None:
    from kmtr_stream.chain.config import parse_chain_config
    from kmtr_stream.chain.gadget import StreamHeader
    from kmtr_stream.chain.runtime import ChainRunner

    xml, acqs = shepp_logan
    got: list[Any] = []
    lock = threading.Lock()

    def emit(msg: Any) -> None:
        with lock:
            got.append(msg)

    runner = ChainRunner(
        parse_chain_config(CHAIN, "third_party.toml"), emit=emit, header=StreamHeader.parse(xml)
    )
    runner.start()
    runner.submit(XmlHeader(xml))
    for a in acqs:
        runner.submit(a)
    assert runner.close(timeout=30.0)
    errors = [m for m in got if isinstance(m, ErrorReport)]
    assert not errors, errors
    results = [m.body for m in got if isinstance(m, Result) and m.kind == "kspace"]
    finals = [b for b in results if b["final"]]
    assert sorted(b["repetition"] for b in finals) == list(range(ACCEL))
    assert all(b["shape"] == [4, MATRIX, MATRIX] and b["finite"] for b in results)
    assert any(not b["final"] for b in results)  # progressive mode gave early results
    assert sum(b["last"] for b in results) == 1
