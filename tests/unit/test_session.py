"""StreamSession without sockets: the header starts the chain; data before it is one ERROR."""

from __future__ import annotations

from typing import Any

import pytest

from kmtr_stream.chain.config import parse_chain_config
from kmtr_stream.messages import Close, ErrorReport, Text, XmlHeader
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.session import State, StreamSession
from tests.unit.chain_helpers import HEADER_XML, make_acquisition

CHAIN = '[chain]\nname = "t"\nbackend = "numpy"\n[[gadgets]]\nid = "hold"\ntype = "_test_hold"\n'


def _session() -> tuple[StreamSession, list[Any]]:
    sent: list[Any] = []
    catalog = ChainCatalog({"t": parse_chain_config(CHAIN, "t.toml")}, "t")
    return StreamSession(catalog, "c1", sent.append), sent


@pytest.mark.parametrize("first", ["acquisition", "text_then_acquisition"])
def test_data_before_the_header_gets_one_error_and_ends_the_stream(first: str) -> None:
    session, sent = _session()
    if first == "text_then_acquisition":
        session.handle(Text("hello"))  # text before the header is logged, not an error
    session.handle(make_acquisition(0))
    for i in range(1, 4):  # later data and a late header are dropped, not reported again
        session.handle(make_acquisition(i))
    session.handle(XmlHeader(HEADER_XML))
    session.handle(Close())
    errors = [m for m in sent if isinstance(m, ErrorReport)]
    assert len(errors) == 1
    assert errors[0].code == "protocol"
    assert "Acquisition before the ISMRMRD XML header" in errors[0].message
    assert errors[0].message_index == (1 if first == "text_then_acquisition" else 0)
    assert sent[-1] == Close() and len(sent) == 2
    assert session.runner is None and session.state is State.ENDED


def test_a_header_that_does_not_parse_gets_one_error_and_no_chain() -> None:
    session, sent = _session()
    session.handle(XmlHeader("<not-ismrmrd/>"))
    session.handle(make_acquisition(0))
    session.handle(Close())
    assert isinstance(sent[0], ErrorReport) and sent[0].code == "protocol"
    assert sent[0].message_index == 0
    assert "message #0: ISMRMRD XML header does not parse" in sent[0].message
    assert sent[1:] == [Close()] and session.runner is None


def test_the_chain_is_built_with_the_parsed_header() -> None:
    session, sent = _session()
    hdr = XmlHeader(HEADER_XML)
    session.handle(hdr)
    runner = session.runner
    assert runner is not None
    assert runner.context.geometry.encoded_x == 16 and runner.context.geometry.n_ky == 12
    (hold,) = runner.gadgets
    assert hold.context is runner.context
    session.handle(Text("t"))
    session.handle(Close())
    assert sent == [hdr, Text("t"), Close()]
