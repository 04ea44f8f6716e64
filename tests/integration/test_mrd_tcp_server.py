"""MRD/TCP endpoint over real sockets on 127.0.0.1: standard clients, isolation, errors."""

from __future__ import annotations

import logging
import socket
import struct
import threading
from pathlib import Path

import ismrmrd
import pytest
from ismrmrd import serialization as ser

from kmtr_stream.codec.stream import encode_stream
from kmtr_stream.messages import Close, ConfigFile, XmlHeader
from kmtr_stream.transport.client import MrdStreamClient, StreamClient
from kmtr_stream.transport.dataset_io import read_dataset, stream_dataset
from kmtr_stream.transport.mrd_server import MrdServer
from tests.integration.conftest import (
    REPLY_TIMEOUT_S,
    acqs_of,
    errors,
    make_acquisitions,
    make_header_xml,
    same_acquisition,
    wait_for,
)

XML = make_header_xml()


def mrd_client(url: str) -> MrdStreamClient:
    client = StreamClient.connect(url)
    assert isinstance(client, MrdStreamClient)
    return client


def test_recorded_dataset_comes_back_bit_identical(
    mrd_url: str, recorded_dataset: Path, tmp_path: Path
) -> None:
    sent = list(read_dataset(recorded_dataset))
    summary = stream_dataset(recorded_dataset, mrd_url, tmp_path / "out", config="default",
                             timeout_s=REPLY_TIMEOUT_S)
    assert summary.errors == [] and summary.sent == len(sent)
    back = list(read_dataset(tmp_path / "out" / "output.h5"))
    assert back[0] == sent[0] and len(back) == len(sent)
    assert all(same_acquisition(a, b) for a, b in zip(sent[1:], back[1:], strict=True))


def test_standard_ismrmrd_client_streams_unchanged(mrd_server: MrdServer) -> None:
    """The python-ismrmrd serializer/deserializer, as MRD clients use them, talk to us."""
    acqs = make_acquisitions(n_slices=1)
    with socket.create_connection(mrd_server.address, timeout=REPLY_TIMEOUT_S) as sock:
        wfile, rfile = sock.makefile("wb"), sock.makefile("rb")
        out = ser.ProtocolSerializer(wfile)
        out.serialize(ser.ConfigFile("passthrough"))
        out.serialize(ismrmrd.xsd.CreateFromDocument(XML))
        for acq in acqs:
            out.serialize(acq)
        out.close()  # writes CLOSE and flushes
        back = list(ser.ProtocolDeserializer(rfile).deserialize())
    assert isinstance(back[0], ismrmrd.xsd.ismrmrdHeader)
    assert all(same_acquisition(a, b) for a, b in zip(acqs, back[1:], strict=True))


def test_concurrent_clients_do_not_mix(mrd_url: str) -> None:
    results: dict[int, bool] = {}

    def run(k: int) -> None:
        acqs = make_acquisitions(seed=k, n_slices=3)
        with mrd_client(mrd_url) as client:
            client.send_many([XmlHeader(XML), *acqs, Close()])
            back = acqs_of(client.receive_until_close(REPLY_TIMEOUT_S))
        results[k] = len(back) == len(acqs) and all(
            same_acquisition(a, b) for a, b in zip(acqs, back, strict=False))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(2 * REPLY_TIMEOUT_S)
    assert results == {k: True for k in range(4)}


@pytest.mark.parametrize(
    "damage, needle",
    [
        ("unknown_id", "unknown message id 1234"),
        ("truncated", "truncated acquisition data"),
        ("second_header", "second XML header"),
        ("config_text", "CONFIG_TEXT is not accepted"),
    ],
)
def test_protocol_errors_end_only_that_stream(
    mrd_url: str, caplog: pytest.LogCaptureFixture, damage: str, needle: str
) -> None:
    acqs = make_acquisitions(n_slices=1)
    with mrd_client(mrd_url) as bystander:
        bystander.send_many([XmlHeader(XML), *acqs[:3]])
        with mrd_client(mrd_url) as client:
            if damage == "config_text":
                client.send_raw(struct.pack("<HI", 2, 4) + b"x=1\n")
            client.send_many([XmlHeader(XML), *acqs[:4]])
            if damage == "unknown_id":
                client.send_raw(struct.pack("<H", 1234) + b"\0" * 64)
            elif damage == "truncated":
                client.send_raw(encode_stream(acqs[4])[:-10])
                client.shutdown_send()  # nothing more follows, replies still arrive
            elif damage == "second_header":
                client.send(XmlHeader(XML))
            back = client.receive_until_close(REPLY_TIMEOUT_S)
        (err,) = errors(back)
        assert needle in err.message and err.code in ("protocol", "config")
        assert needle in caplog.text
        if damage != "config_text":
            assert all(same_acquisition(a, b)
                       for a, b in zip(acqs[:4], acqs_of(back), strict=True))
        bystander.send_many([*acqs[3:], Close()])
        others = bystander.receive_until_close(REPLY_TIMEOUT_S)
    assert errors(others) == [] and len(acqs_of(others)) == len(acqs)


def test_unknown_config_name_is_refused(mrd_url: str) -> None:
    with mrd_client(mrd_url) as client:
        client.send_many([ConfigFile("../../secrets"), XmlHeader(XML), Close()])
        (err,) = errors(client.receive_until_close(REPLY_TIMEOUT_S))
    assert err.code == "config" and "unknown chain config" in err.message


def test_client_vanishing_mid_slice_aborts_its_chain_only(
    mrd_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kmtr_stream")
    acqs = make_acquisitions(n_slices=1)
    with mrd_client(mrd_url) as bystander:
        bystander.send(XmlHeader(XML))
        host, port = mrd_url.removeprefix("mrd://").rsplit(":", 1)
        vanishing = socket.create_connection((host, int(port)), timeout=REPLY_TIMEOUT_S)
        vanishing.sendall(b"".join(encode_stream(m) for m in [XmlHeader(XML), *acqs[:6]]))
        # Vanishing, not ending: a reset (an end of file would end the stream like CLOSE).
        vanishing.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        vanishing.close()
        assert wait_for(lambda: "client lost mid-stream" in caplog.text)
        assert wait_for(lambda: "chain 'passthrough' aborted" in caplog.text)
        bystander.send_many([*acqs, Close()])
        others = bystander.receive_until_close(REPLY_TIMEOUT_S)
    assert errors(others) == []
    assert all(same_acquisition(a, b) for a, b in zip(acqs, acqs_of(others), strict=True))
