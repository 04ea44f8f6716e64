"""Bad data over real sockets: refused (strict) or flagged (lenient), never a plausible answer.

A small simulated scan (2 slices x 2 phases, 4 coils) streams through the k-MTR chains
(the batch chain and the streaming one, which share the validation policy) on the
shipped weights over ZeroMQ on 127.0.0.1; each test damages it one way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest

from kmtr_stream.chain.config import load_chain_config
from kmtr_stream.messages import Close, ErrorReport, Result, XmlHeader
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.client import StreamClient
from kmtr_stream.transport.zmq_server import ZmqServer
from simulator.config import SimConfig
from simulator.scan import simulate_scan

ROOT = Path(__file__).resolve().parents[2]
CFG = SimConfig(n_slices=2, n_phases=2, n_coils=4, n_noise_readouts=4)
PAIRS = [(s, p) for s in range(CFG.n_slices) for p in range(CFG.n_phases)]
#: The first stream loads the model (seconds on a loaded 2-core machine).
TIMEOUT_S = 240.0


@pytest.fixture(
    scope="module", params=["kmtr.toml", "kmtr_streaming.toml", "kmtr_streaming_pipelined.toml"]
)
def server(request: pytest.FixtureRequest) -> Iterator[ZmqServer]:
    spec = load_chain_config(ROOT / "configs" / request.param)
    lenient = dataclasses.replace(
        spec, name="lenient", inputs=dataclasses.replace(spec.inputs, validation="lenient"))
    catalog = ChainCatalog({"kmtr": spec, "lenient": lenient}, default="kmtr")
    with ZmqServer(catalog, "tcp://127.0.0.1:0", close_timeout_s=TIMEOUT_S) as srv:
        yield srv


@pytest.fixture(scope="module")
def scan() -> tuple[str, list[ismrmrd.Acquisition]]:
    data = simulate_scan(1, 0, CFG)
    return data.xml(CFG), list(data.acquisitions(CFG))


@dataclasses.dataclass
class Replies:
    errors: list[ErrorReport]
    slices: dict[tuple[int, int], dict[str, Any]]
    subject: dict[str, Any] | None

    def causes(self) -> list[str]:
        """The ``cause`` of each per-cause ERROR, in arrival order."""
        return [e.context["cause"] for e in self.errors if "cause" in e.context]

    def refused(self) -> list[tuple[int, int]]:
        return sorted((e.context["slice"], e.context["phase"]) for e in self.errors
                      if e.context.get("refused"))


def run(server: ZmqServer, xml: str, acqs: list[ismrmrd.Acquisition],
        chain: str = "kmtr") -> Replies:
    from kmtr_stream.messages import ConfigFile

    with StreamClient.connect(server.endpoint) as client:
        client.send_many([ConfigFile(chain), XmlHeader(xml), *acqs, Close()], pack=16)
        back = client.receive_until_close(TIMEOUT_S)
    results = [m for m in back if isinstance(m, Result)]
    subjects = [r.body for r in results if r.kind == "subject"]
    assert len(subjects) <= 1
    slices = {(r.body["slice"], r.body["phase"]): r.body for r in results if r.kind == "slice"}
    return Replies([m for m in back if isinstance(m, ErrorReport)], slices,
                   subjects[0] if subjects else None)


def copy(acqs: list[ismrmrd.Acquisition]) -> list[ismrmrd.Acquisition]:
    return [ismrmrd.Acquisition(a.getHead(), a.data.copy()) for a in acqs]


def damage(acqs: list[ismrmrd.Acquisition], i: int,
           edit: Callable[[ismrmrd.AcquisitionHeader, np.ndarray], None]) -> None:
    head, data = acqs[i].getHead(), acqs[i].data.copy()
    edit(head, data)
    acqs[i] = ismrmrd.Acquisition(head, data)


def imaging(acqs: list[ismrmrd.Acquisition], s: int, p: int) -> list[int]:
    """Indices of the imaging readouts of slice ``s`` phase ``p``."""
    return [i for i, a in enumerate(acqs)
            if not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
            and (a.idx.slice, a.idx.phase) == (s, p)]


def with_header(xml: str, edit: Callable[[Any], None]) -> str:
    header = ismrmrd.xsd.CreateFromDocument(xml)
    edit(header)
    return str(header.toXML())


def test_clean_scan_is_not_flagged(server: ZmqServer, scan: Any) -> None:
    xml, acqs = scan
    out = run(server, xml, acqs)
    assert out.errors == [] and sorted(out.slices) == PAIRS
    assert all(b["flags"] == [] for b in out.slices.values())
    assert out.subject is not None and out.subject["flagged"] is False
    assert out.subject["refused"] == [] and out.subject["missing"] == []


def set_nan(head: Any, data: np.ndarray) -> None:
    data[0, 3] = np.nan


def test_nan_readouts_refuse_their_slice_with_one_error_per_cause(
    server: ZmqServer, scan: Any
) -> None:
    xml, acqs = scan
    bad = copy(acqs)
    for i in imaging(bad, 0, 0)[2:5]:  # three NaN readouts in one slice
        damage(bad, i, set_nan)
    out = run(server, xml, bad)
    assert out.causes() == ["non_finite_samples"]  # one ERROR for the cause, not three
    assert out.refused() == [(0, 0)]
    assert sorted(out.slices) == [k for k in PAIRS if k != (0, 0)]  # no plausible 0 mm^2
    assert out.subject is not None and out.subject["refused"] == [[0, 0]]
    assert out.subject["flagged"] is True and "non_finite_samples" in out.subject["flags"]
    assert out.subject["data_faults"] == {"non_finite_samples": 3}


def test_lenient_policy_analyses_without_the_bad_readout_and_flags(
    server: ZmqServer, scan: Any
) -> None:
    xml, acqs = scan
    bad = copy(acqs)
    damage(bad, imaging(bad, 0, 0)[3], set_nan)
    out = run(server, xml, bad, chain="lenient")
    assert out.causes() == ["non_finite_samples"] and out.refused() == []
    assert sorted(out.slices) == PAIRS
    flagged = out.slices[(0, 0)]
    assert flagged["flags"] == ["non_finite_samples"]
    assert flagged["areas_mm2"]["LV"] > 0  # analysed without the NaN line, not emptied by it
    assert all(out.slices[k]["flags"] == [] for k in PAIRS if k != (0, 0))
    assert out.subject is not None and out.subject["flagged"] is True


def test_counters_beyond_the_encoding_limits_get_no_result(
    server: ZmqServer, scan: Any
) -> None:
    xml, acqs = scan
    extra = copy([acqs[i] for i in imaging(acqs, 1, 1)])
    for k in range(len(extra)):  # a whole slice 7, phase 1: outside the header's 0..1
        damage(extra, k, lambda h, d: setattr(h.idx, "slice", 7))
    ghost = copy([acqs[i] for i in imaging(acqs, 0, 1)])
    for k in range(len(ghost)):  # and a phase 5
        damage(ghost, k, lambda h, d: setattr(h.idx, "phase", 5))
    out = run(server, xml, [*acqs[:-1], *extra, *ghost, acqs[-1]])
    assert out.causes() == ["counter_out_of_range"]  # one ERROR for 2 x 24 readouts
    assert sorted(out.slices) == PAIRS
    assert sorted(out.refused()) == [(0, 5), (7, 1)]
    assert out.subject is not None and out.subject["flagged"] is True


def test_duplicate_line_refuses_its_slice(server: ZmqServer, scan: Any) -> None:
    xml, acqs = scan
    lines = imaging(acqs, 1, 0)
    bad = [*acqs[: lines[4]], copy([acqs[lines[1]]])[0], *acqs[lines[4]:]]
    out = run(server, xml, bad)
    assert out.causes() == ["duplicate_line"] and out.refused() == [(1, 0)]
    assert sorted(out.slices) == [k for k in PAIRS if k != (1, 0)]


def test_inf_in_noise_scan_flags_every_result(server: ZmqServer, scan: Any) -> None:
    xml, acqs = scan
    bad = copy(acqs)
    damage(bad, 1, lambda h, d: d.__setitem__((0, 0), np.inf))  # a noise readout
    assert bad[1].is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    out = run(server, xml, bad)
    assert out.causes() == ["noise_calibration_failed"]
    assert sorted(out.slices) == PAIRS
    assert all(b["flags"] == ["noise_calibration_failed"] for b in out.slices.values())
    assert out.subject is not None and out.subject["flagged"] is True
    assert out.subject["flags"] == ["noise_calibration_failed"]


@pytest.mark.parametrize("field", ["coils", "readout"])
def test_header_contradicting_its_data_gets_one_error_not_one_per_readout(
    server: ZmqServer, scan: Any, field: str
) -> None:
    xml, acqs = scan

    def edit(h: Any) -> None:
        if field == "coils":
            h.acquisitionSystemInformation.receiverChannels = 8
        else:
            h.encoding[0].encodedSpace.matrixSize.x = 100

    out = run(server, with_header(xml, edit), acqs)
    assert out.causes() == ["header_mismatch"]
    assert len(out.errors) == 1 + len(PAIRS) + 1  # the cause, each refused slice, no subject
    assert out.refused() == PAIRS and out.slices == {} and out.subject is None
    assert "no subject result" in out.errors[-1].message


def test_header_limits_the_data_never_fill_flag_the_subject(
    server: ZmqServer, scan: Any
) -> None:
    xml, acqs = scan

    def edit(h: Any) -> None:
        lim = h.encoding[0].encodingLimits
        # the largest counts the default limits admit (docs/limits.md)
        lim.slice.maximum, lim.phase.maximum = 127, 255

    out = run(server, with_header(xml, edit), acqs)
    assert sorted(out.slices) == PAIRS and out.errors == []
    subject = out.subject
    assert subject is not None and subject["flagged"] is True
    assert subject["flags"] == ["incomplete"] and subject["n_missing"] == 128 * 256 - 4
    assert len(subject["missing"]) == 256  # listed up to a cap, counted in full


@pytest.mark.parametrize("chain", ["kmtr.toml", "kmtr_streaming.toml"])
def test_slices_over_max_buffered_bytes_get_one_error_each_not_one_per_readout(
    scan: Any, chain: str,
) -> None:
    from kmtr_stream.limits import Limits

    xml, acqs = scan
    spec = load_chain_config(ROOT / "configs" / chain)
    catalog = ChainCatalog({"kmtr": spec}, default="kmtr")
    limits = Limits().replace(max_buffered_bytes=1 << 10)
    with ZmqServer(catalog, "tcp://127.0.0.1:0", close_timeout_s=TIMEOUT_S,
                   limits=limits) as srv:
        out = run(srv, xml, acqs)
    assert out.slices == {}  # none analysed from a buffer that was never allocated
    hit = [e for e in out.errors if e.code == "limit"]
    assert len(hit) == len(PAIRS) == len(out.errors) - 1
    # Each refused slice counts as refused, naming the limit, so the stream ends with an
    # explicit subject-level error instead of a subject result of missing slices.
    (last,) = [e for e in out.errors if e.code != "limit"]
    assert last.message.startswith(f"no subject result: all {len(PAIRS)} slices")
    assert last.context["causes"] == ["max_buffered_bytes"]
    assert last.context["refused_pairs"] == sorted([s, p] for s, p in PAIRS)
    assert all("limit max_buffered_bytes=1024 reached" in e.message for e in hit)
    assert sorted(e.message.split("slice buffer ")[1].split(" of ")[0] for e in hit) == [
        f"slice={s} phase={p} repetition=0" for s, p in PAIRS]
