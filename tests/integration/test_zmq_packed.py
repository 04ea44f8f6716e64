"""Packed ZeroMQ messages over real sockets on 127.0.0.1."""

from __future__ import annotations

import time
from typing import Any

import pytest
import zmq

from kmtr_stream.codec.zmq_frames import decode_frames, encode_frames, frame_header
from kmtr_stream.codec.zmq_packed import PACKED_ID, pack_frames, split_message
from kmtr_stream.messages import Close, ErrorReport, Text, XmlHeader
from kmtr_stream.transport.client import ClientTimeoutError, ZmqStreamClient
from kmtr_stream.transport.zmq_server import ZmqServer
from tests.integration.conftest import (
    REPLY_TIMEOUT_S,
    acqs_of,
    errors,
    make_acquisitions,
    make_header_xml,
    same_acquisition,
)

XML = make_header_xml()


def raw_dealer(server: ZmqServer) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(server.endpoint)
    return sock


def read_until_close(sock: zmq.Socket) -> tuple[list[Any], int]:
    """Decoded replies up to CLOSE, and how many ZeroMQ messages carried them packed."""
    out: list[Any] = []
    packed = 0
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not sock.poll(100):
            continue
        frames = sock.recv_multipart()
        inner, fault = split_message(frames)
        assert fault is None
        packed += len(inner) > 1 or inner[0] is not frames
        for m in inner:
            msg = decode_frames(m)
            if isinstance(msg, Close):
                return out, packed
            out.append(msg)
    raise AssertionError(f"no CLOSE within {REPLY_TIMEOUT_S} s ({len(out)} replies)")


def test_packed_stream_comes_back_whole_and_replies_are_packed(zmq_server: ZmqServer) -> None:
    acqs = make_acquisitions(n_slices=2)
    sock = raw_dealer(zmq_server)
    try:
        sock.send_multipart(encode_frames(XmlHeader(XML)))
        for i in range(0, len(acqs), 8):
            sock.send_multipart(pack_frames([encode_frames(a) for a in acqs[i:i + 8]]))
        time.sleep(0.2)  # let the chain's outputs pile up, as under load
        sock.send_multipart(encode_frames(Close()))
        back, packed = read_until_close(sock)
    finally:
        sock.close(0)
    got = acqs_of(back)
    assert errors(back) == [] and len(got) == len(acqs)
    assert all(same_acquisition(a, b) for a, b in zip(acqs, got, strict=True))
    assert packed >= 1  # waiting outputs left together


def test_unpacking_server_when_pack_max_is_1(catalog: Any) -> None:
    acqs = make_acquisitions(n_slices=1)
    with ZmqServer(catalog, "tcp://127.0.0.1:0", pack_max=1, close_timeout_s=10.0) as server:
        sock = raw_dealer(server)
        try:
            sock.send_multipart(pack_frames([encode_frames(m) for m in [XmlHeader(XML), *acqs]]))
            time.sleep(0.2)
            sock.send_multipart(encode_frames(Close()))
            back, packed = read_until_close(sock)
        finally:
            sock.close(0)
    assert packed == 0 and len(acqs_of(back)) == len(acqs)


def test_bad_messages_inside_a_packed_message(zmq_server: ZmqServer,
                                              caplog: pytest.LogCaptureFixture) -> None:
    acqs = make_acquisitions(n_slices=1)[:4]
    unknown = [frame_header(4242, [3]), b"abc"]
    sock = raw_dealer(zmq_server)
    try:
        sock.send_multipart(encode_frames(XmlHeader(XML)))
        # An unknown id is skipped with an error; the readouts around it pass.
        sock.send_multipart(pack_frames([encode_frames(acqs[0]), unknown,
                                         encode_frames(acqs[1])]))
        # A packed frame cut short: the readout before the cut passes, then the stream ends.
        _, body = pack_frames([encode_frames(acqs[2]), encode_frames(acqs[3])])
        cut = bytes(body)[: len(body) - 100]
        sock.send_multipart([frame_header(PACKED_ID, [len(cut)]), cut])
        sock.send_multipart(encode_frames(Text("after the fault")))
        back, _ = read_until_close(sock)
    finally:
        sock.close(0)
    got = acqs_of(back)
    assert [a.scan_counter for a in got] == [a.scan_counter for a in acqs[:3]]
    errs = [m for m in back if isinstance(m, ErrorReport)]
    assert len(errs) == 2
    assert "unknown message id 4242" in errs[0].message
    assert "packed message 1" in errs[1].message and "runs past the end" in errs[1].message
    assert Text("after the fault") not in back  # the stream had ended
    assert "unknown message id 4242" in caplog.text


def test_oversized_frame_drops_only_that_connection(
    catalog: Any, caplog: pytest.LogCaptureFixture
) -> None:
    acqs = make_acquisitions(n_slices=1)
    with ZmqServer(catalog, "tcp://127.0.0.1:0", max_frame_bytes=1 << 20,
                   close_timeout_s=10.0) as server:
        bystander = raw_dealer(server)
        sender = raw_dealer(server)
        try:
            bystander.send_multipart(encode_frames(XmlHeader(XML)))
            sender.send_multipart(encode_frames(XmlHeader(XML)))
            time.sleep(0.2)
            sender.send_multipart([frame_header(PACKED_ID, [2 << 20]), bytes(2 << 20)])
            deadline = time.monotonic() + REPLY_TIMEOUT_S
            while "client lost mid-stream" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "client lost mid-stream" in caplog.text
            for a in acqs:
                bystander.send_multipart(encode_frames(a))
            bystander.send_multipart(encode_frames(Close()))
            back, _ = read_until_close(bystander)
        finally:
            sender.close(0)
            bystander.close(0)
    assert errors(back) == [] and len(acqs_of(back)) == len(acqs)


def test_send_gives_up_when_the_server_takes_nothing() -> None:
    ctx = zmq.Context.instance()
    deaf = ctx.socket(zmq.ROUTER)  # accepts the connection, never reads
    deaf.linger = 0
    deaf.rcvhwm = 1
    port = deaf.bind_to_random_port("tcp://127.0.0.1")
    client = ZmqStreamClient(f"tcp://127.0.0.1:{port}", sndhwm=2, send_timeout_s=0.5)
    acqs = make_acquisitions(n_slices=1)[:16]
    t0 = time.monotonic()
    try:
        with pytest.raises(ClientTimeoutError, match=r"took no message for 0\.5 s"):
            for _ in range(2000):  # ~540 MB if nothing pushed back
                client.send_many(acqs, pack=16)
    finally:
        client.close()
        deaf.close(0)
    assert time.monotonic() - t0 < REPLY_TIMEOUT_S
