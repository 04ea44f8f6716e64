"""A chain that cannot keep up delays only its own ZeroMQ connection.

The server's I/O thread serves every connection. Were it to wait for room in one
chain's queue, it would read no peer meanwhile, and libzmq's heartbeats would drop
every connection whose input it left unread (16 paced scanners on 2 cores did).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import ismrmrd

from kmtr_stream.chain.config import load_chain_config
from kmtr_stream.chain.gadget import Gadget, NoParams
from kmtr_stream.chain.registry import register
from kmtr_stream.messages import Close, ConfigFile, XmlHeader
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.zmq_server import ZmqServer
from tests.integration.conftest import (
    REPLY_TIMEOUT_S,
    acqs_of,
    errors,
    make_acquisitions,
    make_header_xml,
    same_acquisition,
    wait_for,
    zmq_client,
)

XML = make_header_xml()

GATE_CHAIN = """
[chain]
name = "gate"
queue_size = 4
full_queue_policy = "block"
[chain.inputs]
acquisition = "pass"
[[gadgets]]
id = "gate"
type = "_test_gate"
"""


@register("_test_gate")
class GateGadget(Gadget):
    """Passes each readout on once ``gate`` is open: a chain as slow as the test wants."""

    Params: ClassVar[type] = NoParams
    handles: ClassVar[tuple[type, ...]] = (ismrmrd.Acquisition,)
    gate: ClassVar[threading.Event] = threading.Event()

    def process(self, message: Any) -> Iterable[Any]:
        GateGadget.gate.wait(REPLY_TIMEOUT_S)
        yield message


def test_a_chain_that_cannot_keep_up_delays_only_its_own_connection(
    tmp_path: Path, catalog: ChainCatalog
) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(GATE_CHAIN)
    gated = ChainCatalog({**catalog.specs, "gate": load_chain_config(path)},
                         default=catalog.default)
    server = ZmqServer(gated, "tcp://127.0.0.1:0", heartbeat_ivl_ms=200,
                       heartbeat_timeout_ms=1000, close_timeout_s=10.0)
    slow_acqs = make_acquisitions(n_slices=3)
    acqs = make_acquisitions(n_slices=2)
    GateGadget.gate.clear()
    try:
        with server, zmq_client(server) as slow:
            slow.send_many([ConfigFile("gate"), XmlHeader(XML), *slow_acqs, Close()])
            # Its chain's queue is full: the rest of its input waits in the server.
            assert wait_for(lambda: any(o.held for o in server.outboxes.values()))
            with zmq_client(server) as witness:
                witness.send_many([XmlHeader(XML), *acqs, Close()])
                back = witness.receive_until_close(REPLY_TIMEOUT_S)
            assert errors(back) == []
            assert len(acqs_of(back)) == len(acqs)
            assert not GateGadget.gate.is_set()  # served while the slow chain still waits
            time.sleep(1.5)  # past the heartbeat timeout: the slow client must stay connected
            GateGadget.gate.set()
            back = slow.receive_until_close(REPLY_TIMEOUT_S)
        assert errors(back) == []
        got = acqs_of(back)
        assert len(got) == len(slow_acqs)
        assert all(same_acquisition(a, b) for a, b in zip(slow_acqs, got, strict=True))
        assert server.stalled_drops == 0
    finally:
        GateGadget.gate.set()
