"""``kmtr_streaming`` handing its slices to ``kmtr_network`` in a thread of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ismrmrd
import numpy as np
import pytest

from kmtr_stream.chain import registry
from kmtr_stream.chain.config import parse_chain_config
from kmtr_stream.chain.gadget import ChainContext, StreamHeader
from kmtr_stream.chain.runtime import ChainRunner
from kmtr_stream.chain.stages import run_gadgets
from kmtr_stream.errors import ConfigError, KmtrError
from kmtr_stream.messages import ErrorReport, PreparedSlice, Result, SliceKSpace, SliceResult
from simulator.config import SimConfig
from simulator.dataset import subject_id_for
from simulator.scan import simulate_scan

_HEAD = """
[chain]
name = "t"
[[gadgets]]
id = "prewhiten"
type = "noise_prewhitening"
[[gadgets]]
id = "oversampling"
type = "remove_oversampling"
[[gadgets]]
id = "kmtr"
type = "kmtr_streaming"
[gadgets.params]
calibration_lines = 12
"""
_TAIL = """
[[gadgets]]
id = "subject"
type = "subject_aggregation"
[gadgets.params]
model = "default"
"""
_NETWORK = """
[[gadgets]]
id = "network"
type = "kmtr_network"
new_thread = true
"""


def _stream(body: str, xml: str, acqs: list[ismrmrd.Acquisition]) -> list[Any]:
    """What the chain ``body`` emits for ``acqs``, through a real runner with its threads."""
    out: list[Any] = []
    runner = ChainRunner(parse_chain_config(body, "t.toml"), emit=out.append,
                         header=StreamHeader.parse(xml))
    runner.start()
    for a in acqs:
        runner.submit(a)
    assert runner.close(timeout=120)
    stats = runner.stats()
    assert stats["errors"] == 0 and stats["internal_at_end"] == 0
    out.append(stats)
    return out


@pytest.fixture(scope="module")
def scan() -> tuple[str, list[ismrmrd.Acquisition]]:
    cfg = SimConfig(n_slices=2, n_phases=3, accel=4)
    s = simulate_scan(subject_id_for("test", 1), 7, cfg, diagnosis=1)
    return s.xml(cfg), list(s.acquisitions(cfg))


def test_hand_off_to_a_network_thread_gives_the_one_gadget_chains_outputs(
    scan: tuple[str, list[ismrmrd.Acquisition]],
) -> None:
    """Same messages in the same order, label for label; the network ran in the second
    worker, and every slice's timings span the trigger to its result."""
    xml, acqs = scan
    *one, _ = _stream(_HEAD + _TAIL, xml, acqs)
    *two, stats = _stream(_HEAD + "hand_off = true\n" + _NETWORK + _TAIL, xml, acqs)
    (net,) = [st for st in stats["stages"] if st["id"] == "network"]
    assert net["worker"] == 1 and net["count"] == 6  # the network ran in the second thread
    assert [type(m).__name__ for m in two] == [type(m).__name__ for m in one]
    images = [m for m in two if isinstance(m, ismrmrd.Image)]
    assert [im.image_index for im in images] == list(range(6))
    for x, y in zip([m for m in one if isinstance(m, ismrmrd.Image)], images, strict=True):
        np.testing.assert_array_equal(y.data, x.data)
    a = [m.body for m in one if isinstance(m, Result) and m.kind == "slice"]
    b = [m.body for m in two if isinstance(m, Result) and m.kind == "slice"]
    assert len(b) == 6
    for x, y in zip(a, b, strict=True):
        assert [y[k] for k in ("slice", "phase", "lines_used", "areas_mm2")] == [
            x[k] for k in ("slice", "phase", "lines_used", "areas_mm2")]
        t = y["timings_ms"]
        assert t["gadget"] >= t["network"] > 0 and t["finalize"] >= 0 and t["batch"] >= 1
    (ref,) = [m.body for m in one if isinstance(m, Result) and m.kind == "subject"]
    (got,) = [m.body for m in two if isinstance(m, Result) and m.kind == "subject"]
    assert got["diagnosis"]["class"] == ref["diagnosis"]["class"]
    for k, v in ref["phenotypes"].items():
        assert got["phenotypes"][k] == pytest.approx(v, rel=1e-4, abs=1e-4)


def test_hand_off_without_a_network_gadget_is_refused_when_the_config_is_read() -> None:
    with pytest.raises(ConfigError, match="gadget 'kmtr': hand_off = true needs a kmtr_network"):
        parse_chain_config(_HEAD + "hand_off = true\n" + _TAIL, "t.toml")
    # the network gadget before it does not count either
    with pytest.raises(ConfigError, match="needs a kmtr_network gadget after it"):
        parse_chain_config(
            _NETWORK.replace("new_thread = true\n", "") + _HEAD + "hand_off = true\n", "t.toml")


@dataclass
class _Inputs:
    slice: int
    finalize_ms: float = 0.25


class _Network:
    """Stands in for the model's batcher: fails on the slices it is told to."""

    def __init__(self, fail: set[int]) -> None:
        self.fail = fail

    def run(self, inputs: Any) -> tuple[np.ndarray, np.ndarray, float, int]:
        if inputs.slice in self.fail:
            raise KmtrError("non-finite logits")
        return np.full((4, 4), inputs.slice, np.int16), np.zeros(8, np.float32), 1.5, 2


def test_a_failed_network_run_is_one_error_for_that_slice_and_the_next_slice_goes_on(
    scan: tuple[str, list[ismrmrd.Acquisition]],
) -> None:
    xml, _ = scan
    ctx = ChainContext.for_stream(StreamHeader.parse(xml))
    cls = registry.lookup("kmtr_network")
    gadget = cls("network", cls.Params(), ctx)
    net = _Network(fail={1})
    msgs = [PreparedSlice(SliceKSpace(None, np.ones(4, bool), s, 0, 0, 3, 1, "last_in_slice",
                                      True, False, (3.0, 3.0, 8.0)), _Inputs(s), net, 0)
            for s in range(3)]
    out = run_gadgets([gadget], msgs)
    kinds = [type(m).__name__ for m in out]
    assert kinds == ["Image", "SliceResult", "ErrorReport", "Image", "SliceResult"]
    err = out[2]
    assert isinstance(err, ErrorReport) and err.gadget == "network" and err.message_index == 1
    assert "slice 1 phase 0: network failed: non-finite logits" in err.message
    res = [m for m in out if isinstance(m, SliceResult)]
    assert [r.slice for r in res] == [0, 2] and res[1].timings_ms["finalize"] == 0.25
    assert res[1].timings_ms["batch"] == 2  # the size of the pass the batcher ran
