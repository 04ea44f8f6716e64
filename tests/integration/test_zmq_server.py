"""ZeroMQ endpoint over real sockets on 127.0.0.1: pass-through, isolation, errors."""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest

from kmtr_stream.codec.zmq_frames import encode_frames, frame_header
from kmtr_stream.messages import Close, ConfigFile, Text, XmlHeader
from kmtr_stream.transport.dataset_io import read_dataset, stream_dataset
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


@pytest.mark.parametrize("pack", [1, 16])
@pytest.mark.parametrize("chain", ["passthrough", "relay"])  # inline, worker thread
def test_recorded_dataset_comes_back_bit_identical(
    zmq_server: ZmqServer, recorded_dataset: Path, tmp_path: Path, pack: int, chain: str
) -> None:
    sent = list(read_dataset(recorded_dataset))
    summary = stream_dataset(recorded_dataset, zmq_server.endpoint, tmp_path / "out",
                             config=chain, timeout_s=REPLY_TIMEOUT_S, pack=pack)
    assert summary.errors == [] and summary.sent == len(sent)
    back = list(read_dataset(tmp_path / "out" / "output.h5"))
    assert back[0] == sent[0]  # the XML header passes through unchanged
    assert len(back) == len(sent)
    assert all(same_acquisition(a, b) for a, b in zip(sent[1:], back[1:], strict=True))


def test_concurrent_clients_do_not_mix(zmq_server: ZmqServer) -> None:
    results: dict[int, list[Any]] = {}

    def run(k: int) -> None:
        acqs = make_acquisitions(seed=k, n_slices=3)
        for a in acqs:
            a.measurement_uid = k
        with zmq_client(zmq_server) as client:
            client.send(XmlHeader(XML))
            client.send_many(acqs)
            client.send(Close())
            back = acqs_of(client.receive_until_close(REPLY_TIMEOUT_S))
        results[k] = [len(back) == len(acqs),
                      all(same_acquisition(a, b) for a, b in zip(acqs, back, strict=False))]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(2 * REPLY_TIMEOUT_S)
    assert results == {k: [True, True] for k in range(4)}


def test_config_file_selects_allowed_chain_only(
    zmq_server: ZmqServer, caplog: pytest.LogCaptureFixture
) -> None:
    with zmq_client(zmq_server) as client:
        client.send_many([ConfigFile("relay"), XmlHeader(XML), Close()])
        assert client.receive_until_close(REPLY_TIMEOUT_S) == [XmlHeader(XML)]
    with zmq_client(zmq_server) as client:
        client.send_many([ConfigFile("/etc/passwd"), XmlHeader(XML), Close()])
        (err,) = errors(client.receive_until_close(REPLY_TIMEOUT_S))
    assert err.code == "config" and "unknown chain config '/etc/passwd'" in err.message
    assert "relay" in err.message
    assert "unknown chain config" in caplog.text


def test_unknown_message_id_is_reported_and_skipped(
    zmq_server: ZmqServer, caplog: pytest.LogCaptureFixture
) -> None:
    acqs = make_acquisitions(n_slices=1)
    with zmq_client(zmq_server) as client:
        client.send(XmlHeader(XML))
        client.send_many(acqs[:5])
        client.send_frames([frame_header(1234, [3]), b"abc"])
        client.send_many(acqs[5:])
        client.send(Close())
        back = client.receive_until_close(REPLY_TIMEOUT_S)
    (err,) = errors(back)
    assert err.code == "protocol" and "unknown message id 1234" in err.message
    assert err.message_index == 6
    got = acqs_of(back)
    assert len(got) == len(acqs)
    assert all(same_acquisition(a, b) for a, b in zip(acqs, got, strict=True))
    assert "unknown message id 1234" in caplog.text


@pytest.mark.parametrize(
    "damage, needle",
    [
        ("truncated_frame", "frame 2 has"),
        ("size_mismatch", "samples x channels x 8"),
        ("second_header", "second XML header"),
        ("data_before_header", "before the ISMRMRD XML header"),
    ],
)
def test_protocol_errors_end_only_that_stream(
    zmq_server: ZmqServer, caplog: pytest.LogCaptureFixture, damage: str, needle: str
) -> None:
    acqs = make_acquisitions(n_slices=1)
    bystander = zmq_client(zmq_server)
    bystander.send(XmlHeader(XML))
    bystander.send_many(acqs[:3])
    with zmq_client(zmq_server) as client:
        if damage != "data_before_header":
            client.send(XmlHeader(XML))
        client.send_many(acqs[:4])
        frames = [bytes(f) for f in encode_frames(acqs[4])]
        if damage == "truncated_frame":
            client.send_frames([*frames[:-1], frames[-1][:-5]])
        elif damage == "size_mismatch":
            short = frames[-1][:-8]
            traj = len(frames[2]) if len(frames) == 4 else 0
            client.send_frames([frame_header(1008, [340, traj, len(short)]),
                                *frames[1:-1], short])
        elif damage == "second_header":
            client.send(XmlHeader(XML))
        client.send_many(acqs[5:])  # dropped: the stream already ended
        client.send(Close())
        back = client.receive_until_close(REPLY_TIMEOUT_S)
    (err,) = errors(back)
    assert needle in err.message and err.code == "protocol"
    assert needle in caplog.text
    if damage != "data_before_header":
        # Everything valid before the error was flushed and returned.
        assert all(same_acquisition(a, b) for a, b in zip(acqs[:4], acqs_of(back), strict=True))
    # The other connection is unaffected.
    bystander.send_many(acqs[3:])
    bystander.send(Close())
    others = bystander.receive_until_close(REPLY_TIMEOUT_S)
    bystander.close()
    assert errors(others) == [] and len(acqs_of(others)) == len(acqs)


def test_client_vanishing_mid_slice_aborts_its_chain_only(
    zmq_server: ZmqServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kmtr_stream")
    acqs = make_acquisitions(n_slices=1)
    bystander = zmq_client(zmq_server)
    bystander.send(XmlHeader(XML))
    vanishing = zmq_client(zmq_server)
    vanishing.send(XmlHeader(XML))
    vanishing.send_many(acqs[:6])  # mid-slice: no LAST_IN_SLICE yet
    assert wait_for(lambda: len(zmq_server.sessions) == 2)
    vanishing.close()  # linger=0: gone without CLOSE
    assert wait_for(lambda: "client lost mid-stream" in caplog.text)
    assert "chain 'passthrough' aborted" in caplog.text
    assert wait_for(lambda: len(zmq_server.sessions) == 1)
    bystander.send_many(acqs)
    bystander.send(Close())
    others = bystander.receive_until_close(REPLY_TIMEOUT_S)
    bystander.close()
    assert errors(others) == []
    assert all(same_acquisition(a, b) for a, b in zip(acqs, acqs_of(others), strict=True))


def test_idle_client_gets_error_and_chain_aborted(
    catalog: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = ZmqServer(catalog, "tcp://127.0.0.1:0", idle_timeout_s=0.5, close_timeout_s=5.0)
    with server, zmq_client(server) as client:
        client.send(XmlHeader(XML))
        client.send(Text("then silence"))
        msgs: list[Any] = []
        while not errors(msgs):
            msg = client.receive(REPLY_TIMEOUT_S)
            assert msg is not None, "no idle-timeout error arrived"
            msgs.append(msg)
    assert "no message for 0.5 s" in errors(msgs)[0].message
    assert wait_for(lambda: "client lost mid-stream" in caplog.text)


def test_results_arrays_are_views_over_frames(zmq_server: ZmqServer) -> None:
    data = np.arange(8 * 256 * 2, dtype=np.float32).view(np.complex64).reshape(8, 256)
    with zmq_client(zmq_server) as client:
        client.send_many([XmlHeader(XML), ismrmrd.Acquisition.from_array(data), Close()])
        (acq,) = acqs_of(client.receive_until_close(REPLY_TIMEOUT_S))
    assert np.array_equal(acq.data, data) and not acq.data.flags.owndata


def test_inline_chain_runs_in_the_io_thread_and_returns_everything(
    catalog: Any,
) -> None:
    spec = catalog.select("passthrough")
    inline = dataclasses.replace(spec, name="inline", inline=True)
    cat = type(catalog)({"passthrough": spec, "inline": inline}, default="passthrough")
    acqs = make_acquisitions(n_slices=1)
    with ZmqServer(cat, "tcp://127.0.0.1:0", close_timeout_s=10.0) as server:
        with zmq_client(server) as client:
            client.send(ConfigFile("inline"))
            client.send(XmlHeader(XML))
            client.send_many(acqs)
            client.send(Close())
            back = client.receive_until_close(REPLY_TIMEOUT_S)
    assert errors(back) == []
    got = acqs_of(back)
    assert len(got) == len(acqs)
    for a, b in zip(got, acqs, strict=True):
        assert same_acquisition(a, b)
