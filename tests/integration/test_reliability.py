"""Isolation, limits, stream endings and safe logs, over real sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import math
import socket
import struct
from typing import Any

import ismrmrd
import pytest
import zmq

from kmtr_stream.codec.parts import IMAGE_HEADER_BYTES
from kmtr_stream.codec.stream import encode_stream
from kmtr_stream.codec.zmq_frames import encode_frames
from kmtr_stream.limits import Limits
from kmtr_stream.messages import Close, MessageId, Text, XmlHeader
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.client import MrdStreamClient
from kmtr_stream.transport.mrd_server import MrdServer
from kmtr_stream.transport.zmq_server import ZmqServer
from tests.integration.conftest import (
    REPLY_TIMEOUT_S,
    acqs_of,
    check_takeover_isolated,
    errors,
    fixed_id_dealer,
    make_acquisitions,
    make_header_xml,
    replies_until_close,
    same_acquisition,
    wait_for,
    zmq_client,
)

XML = make_header_xml()


def _mrd(server: MrdServer) -> MrdStreamClient:
    host, port = server.address
    return MrdStreamClient(host, port)


def _flooder(ctx: zmq.Context[Any], endpoint: str, n: int) -> zmq.Socket:
    """A DEALER that streams ``n`` readouts and never reads a reply."""
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvhwm = 1
    sock.sndhwm = 100_000
    sock.connect(endpoint)
    acq = make_acquisitions(n_coils=8, n_kx=256, n_slices=1)[0]
    frames = [bytes(f) for f in encode_frames(acq)]
    sock.send_multipart(encode_frames(XmlHeader(XML)))
    for _ in range(n):
        sock.send_multipart(frames)
    return sock


def _flood_limits(**kw: Any) -> Limits:
    # Full at 64 replies (~1 MiB); held input may reach 64 MiB, more than the flood.
    return Limits().replace(outbox_bytes=64 << 20, outbox_messages=64, **kw)


def test_witness_gets_all_results_while_a_flooder_is_connected(catalog: ChainCatalog) -> None:
    server = ZmqServer(catalog, "tcp://127.0.0.1:0", hwm=16, close_timeout_s=10.0,
                       limits=_flood_limits(outbox_stall_timeout_s=600.0))
    ctx: zmq.Context[Any] = zmq.Context()
    acqs = make_acquisitions(n_slices=3)
    try:
        with server, _flooder(ctx, server.endpoint, 3000):
            # The flooder's outbox fills: its input is held, nothing else waits on it.
            assert wait_for(lambda: any(o.full for o in server.outboxes.values()))
            with zmq_client(server) as witness:
                witness.send(XmlHeader(XML))
                witness.send_many(acqs)
                witness.send(Close())
                back = witness.receive_until_close(REPLY_TIMEOUT_S)
            assert errors(back) == []
            assert all(same_acquisition(a, b) for a, b in zip(acqs, acqs_of(back), strict=True))
            assert len(acqs_of(back)) == len(acqs)
            # Still connected and bounded: nothing of it was dropped meanwhile.
            # (the witness's outbox goes when its last reply has left: wait for that)
            assert wait_for(lambda: len(server.sessions) == 1 and len(server.outboxes) == 1)
            assert server.stalled_drops == 0
            (box,) = server.outboxes.values()
            assert box.peak_bytes < 4 << 20
    finally:
        ctx.term()


def test_flooder_is_dropped_after_the_stall_timeout(
    catalog: ChainCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    server = ZmqServer(catalog, "tcp://127.0.0.1:0", hwm=16,
                       limits=_flood_limits(outbox_stall_timeout_s=0.5))
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        with server, _flooder(ctx, server.endpoint, 3000):
            assert wait_for(lambda: server.stalled_drops == 1)
            assert wait_for(lambda: not server.sessions and not server.outboxes)
    finally:
        ctx.term()
    assert "dropped:" in caplog.text and "outbox_stall_timeout_s=0.5" in caplog.text


def test_fixed_routing_id_reconnecting_gets_a_fresh_session(zmq_server: ZmqServer) -> None:
    acqs = make_acquisitions(n_slices=1)
    for attempt in range(2):
        client = zmq_client(zmq_server)
        client.close()  # replace its socket by one with a fixed routing id
        sock = fixed_id_dealer(zmq_server.endpoint, b"scanner-1")
        for msg in [XmlHeader(XML), *acqs, Close()]:
            sock.send_multipart(encode_frames(msg))
        got = replies_until_close(sock)
        sock.close(0)
        assert got and isinstance(got[-1], Close), f"attempt {attempt}: no CLOSE"
        assert len(acqs_of(got)) == len(acqs), f"attempt {attempt}"
        # The first connection's disconnect is seen before the next one streams.
        assert wait_for(lambda: not zmq_server.sessions)


def test_fixed_routing_id_taken_over_mid_stream_gets_only_its_own_results(
    zmq_server: ZmqServer, caplog: pytest.LogCaptureFixture
) -> None:
    check_takeover_isolated(zmq_server)
    line = next(r.getMessage() for r in caplog.records if "taken over" in r.getMessage())
    assert "SECURITY" in line and "7363616e6e65722d31" in line  # b"scanner-1".hex()


def test_mrd_end_of_file_without_close_flushes_like_close(mrd_server: MrdServer) -> None:
    acqs = make_acquisitions(n_slices=2)
    with _mrd(mrd_server) as client:
        client.send(XmlHeader(XML))
        client.send_many(acqs)
        client.shutdown_send()  # end of file, no CLOSE
        back = client.receive_until_close(REPLY_TIMEOUT_S)
    assert errors(back) == []
    assert all(same_acquisition(a, b) for a, b in zip(acqs, acqs_of(back), strict=True))
    assert len(acqs_of(back)) == len(acqs)


def test_mrd_image_whose_size_overflows_int64_gets_an_error(mrd_server: MrdServer) -> None:
    head = ismrmrd.ImageHeader()
    head.matrix_size[:] = (65535, 65535, 65535)
    head.channels = 65535
    head.data_type = ismrmrd.DATATYPE_CXDOUBLE
    assert math.prod((65535,) * 4) * 16 > 2**63  # int64 overflow
    raw = struct.pack("<H", MessageId.IMAGE) + bytes(head)[:IMAGE_HEADER_BYTES]
    with _mrd(mrd_server) as client:
        client.send(XmlHeader(XML))
        client.send_raw(raw)
        back = client.receive_until_close(REPLY_TIMEOUT_S)
    (err,) = errors(back)
    assert "image data declares" in err.message


def test_mrd_idle_connection_gets_an_error_and_is_closed(catalog: ChainCatalog) -> None:
    server = MrdServer(catalog, "127.0.0.1:0", limits=Limits().replace(idle_timeout_s=0.5))
    with server, _mrd(server) as client:
        client.send(XmlHeader(XML))
        assert client.receive(REPLY_TIMEOUT_S) == XmlHeader(XML)  # echoed by the chain
        msg = client.receive(REPLY_TIMEOUT_S)
        assert msg is not None, "no idle-timeout error arrived"
        (err,) = errors([msg])
        assert "no message for 0.5 s" in err.message and "idle_timeout_s" in err.message
        assert wait_for(lambda: not server._conns)


def _limits_header(n_ky: int = 24, slices: int = 2, phases: int = 1) -> str:
    header = ismrmrd.xsd.CreateFromDocument(make_header_xml(n_ky=n_ky, n_slices=slices))
    lim = header.encoding[0].encodingLimits
    lim.phase = ismrmrd.xsd.limitType(minimum=0, maximum=phases - 1, center=0)
    return str(header.toXML())


@pytest.mark.parametrize("xml, needle", [
    (_limits_header(n_ky=32768), "limit max_matrix=2048 reached: header declares ky lines"),
    (_limits_header(slices=256, phases=256), "limit max_slices=128 reached"),
])
def test_header_beyond_the_limits_is_refused_before_a_chain_starts(
    zmq_server: ZmqServer, caplog: pytest.LogCaptureFixture, xml: str, needle: str
) -> None:
    acqs = make_acquisitions(n_slices=1)
    with zmq_client(zmq_server) as client:
        client.send(XmlHeader(xml))
        client.send_many(acqs)
        client.send(Close())
        back = client.receive_until_close(REPLY_TIMEOUT_S)
    (err,) = errors(back)
    assert needle in err.message and err.code == "limit"
    assert acqs_of(back) == []
    assert needle in caplog.text


def test_mrd_header_over_max_header_bytes_is_refused_before_reading(
    catalog: ChainCatalog,
) -> None:
    server = MrdServer(catalog, "127.0.0.1:0",
                       limits=Limits().replace(max_header_bytes=1 << 16))
    with server, _mrd(server) as client:
        # Declares 512 MiB and sends none of it: the ERROR comes without reading the payload.
        client.send_raw(struct.pack("<HI", MessageId.HEADER, 512 << 20))
        back = client.receive_until_close(REPLY_TIMEOUT_S)
    (err,) = errors(back)
    assert "limit max_header_bytes=65536 reached" in err.message


def test_connections_beyond_max_connections_are_refused(catalog: ChainCatalog) -> None:
    server = ZmqServer(catalog, "tcp://127.0.0.1:0", limits=Limits().replace(max_connections=1))
    with server, zmq_client(server) as first, zmq_client(server) as second:
        first.send(XmlHeader(XML))
        assert wait_for(lambda: len(server.sessions) == 1)
        second.send(XmlHeader(XML))
        (err,) = errors(second.receive_until_close(REPLY_TIMEOUT_S))
        assert "limit max_connections=1 reached" in err.message
        first.send(Close())
        assert errors(first.receive_until_close(REPLY_TIMEOUT_S)) == []


def test_client_text_cannot_forge_a_log_line(
    zmq_server: ZmqServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kmtr_stream")
    forged = "hello\n2026-01-01 00:00:00 ERROR kmtr_stream: forged" + "x" * 10_000
    with zmq_client(zmq_server) as client:
        client.send_many([Text(forged), XmlHeader(XML), Close()])
        client.receive_until_close(REPLY_TIMEOUT_S)
    (line,) = [r.getMessage() for r in caplog.records if "text before header" in r.getMessage()]
    assert "\n" not in line and "hello\\n2026" in line
    assert len(line) < 400 and "more characters" in line


def test_mrd_drain_sends_error_and_close_to_open_streams(mrd_server: MrdServer) -> None:
    host, port = mrd_server.address
    with socket.create_connection((host, port), timeout=REPLY_TIMEOUT_S) as sock:
        sock.sendall(encode_stream(XmlHeader(XML)))
        assert mrd_server.drain(timeout_s=REPLY_TIMEOUT_S)
        data = b""
        while chunk := sock.recv(1 << 16):
            data += chunk
    assert data.endswith(struct.pack("<H", MessageId.CLOSE))
    assert b"server shutting down" in data


def _flood_beside_witness(server: MrdServer) -> tuple[int, int, float]:
    """A client that sends 67 MB of echoes and reads nothing, while a witness streams.

    Asserts the witness got everything and the flooder's connection ended; returns
    (readouts the flooder got out, bytes per readout, seconds until it was dropped).
    """
    import threading
    import time

    readout = encode_stream(make_acquisitions(n_coils=8, n_kx=256, n_slices=1)[0])
    sent = [0]
    with server:
        host, port = server.address
        flooder = socket.create_connection((host, port))
        flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flooder.settimeout(10.0)  # keeps pushing until the server stops reading it

        def flood() -> None:
            try:
                flooder.sendall(encode_stream(XmlHeader(XML)))
                for _ in range(4000):
                    flooder.sendall(readout)
                    sent[0] += 1
            except OSError:
                pass  # the server stopped reading it, then dropped it

        t = threading.Thread(target=flood, daemon=True)
        t0 = time.monotonic()
        t.start()
        acqs = make_acquisitions(n_slices=2)
        with _mrd(server) as witness:
            witness.send(XmlHeader(XML))
            witness.send_many(acqs)
            witness.send(Close())
            back = witness.receive_until_close(REPLY_TIMEOUT_S)
        assert errors(back) == [] and len(acqs_of(back)) == len(acqs)
        t.join(REPLY_TIMEOUT_S)
        assert wait_for(lambda: not server._conns)
        dropped_after = time.monotonic() - t0
        flooder.close()
    return sent[0], len(readout), dropped_after


def test_mrd_client_that_never_reads_is_dropped_and_others_carry_on(
    catalog: ChainCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    """A send blocked for ``send_timeout_s`` drops a non-reading MRD client."""
    _flood_beside_witness(
        MrdServer(catalog, "127.0.0.1:0", limits=Limits().replace(send_timeout_s=0.5)))
    assert "cannot send results, client gone" in caplog.text


def test_mrd_outbox_budget_holds_a_non_reading_client_then_drops_it(
    catalog: ChainCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    """The ZeroMQ outbox budget on MRD/TCP: a client that reads nothing gets at most
    ``outbox_bytes`` (plus one message) queued, its input is no longer read, it is dropped
    after ``outbox_stall_timeout_s``, and a witness streaming meanwhile loses nothing."""
    budget = 1 << 20
    limits = Limits().replace(outbox_bytes=budget, outbox_stall_timeout_s=1.5,
                              send_timeout_s=60.0)  # the outbox, not the send timeout, acts
    server = MrdServer(catalog, "127.0.0.1:0", limits=limits)
    sent, size, dropped_after = _flood_beside_witness(server)
    assert server.stalled_drops == 1
    assert "dropped: its outbox stayed full for more than outbox_stall_timeout_s=1.5 s" \
        in caplog.text
    assert "cannot send results" not in caplog.text  # not the 60 s send timeout
    assert dropped_after < 30.0
    # Bounded: the budget plus the message that crossed it, far below what was sent.
    assert budget < server.outbox_peak_bytes <= budget + size
    assert sent * size > 2 * budget
