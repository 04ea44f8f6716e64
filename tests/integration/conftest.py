"""Shared fixtures of the socket tests: a recorded dataset, chain catalogs, live servers."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest
import zmq

from kmtr_stream.chain.config import load_chain_config
from kmtr_stream.codec.zmq_frames import encode_frames
from kmtr_stream.codec.zmq_packed import decode_message
from kmtr_stream.messages import Close, ErrorReport, XmlHeader
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.client import StreamClient, ZmqStreamClient
from kmtr_stream.transport.mrd_server import MrdServer
from kmtr_stream.transport.zmq_io import recv_frames
from kmtr_stream.transport.zmq_server import ZmqServer

ROOT = Path(__file__).resolve().parents[2]
PASSTHROUGH = ROOT / "configs" / "passthrough.toml"
#: Seconds any socket test may wait for a reply before failing (never hang).
REPLY_TIMEOUT_S = 15.0


def make_header_xml(n_coils: int = 4, n_kx: int = 64, n_ky: int = 24, n_slices: int = 2) -> str:
    """A small valid ISMRMRD XML header for a Cartesian 2D cine-like scan."""
    enc = ismrmrd.xsd.encodingType(
        trajectory=ismrmrd.xsd.trajectoryType.CARTESIAN,
        encodedSpace=ismrmrd.xsd.encodingSpaceType(
            matrixSize=ismrmrd.xsd.matrixSizeType(x=n_kx, y=n_ky, z=1),
            fieldOfView_mm=ismrmrd.xsd.fieldOfViewMm(x=300, y=300, z=8),
        ),
        reconSpace=ismrmrd.xsd.encodingSpaceType(
            matrixSize=ismrmrd.xsd.matrixSizeType(x=n_kx // 2, y=n_ky, z=1),
            fieldOfView_mm=ismrmrd.xsd.fieldOfViewMm(x=150, y=300, z=8),
        ),
        encodingLimits=ismrmrd.xsd.encodingLimitsType(
            kspace_encoding_step_1=ismrmrd.xsd.limitType(
                minimum=0, maximum=n_ky - 1, center=n_ky // 2
            ),
            slice=ismrmrd.xsd.limitType(minimum=0, maximum=n_slices - 1, center=0),
        ),
    )
    header = ismrmrd.xsd.ismrmrdHeader(
        experimentalConditions=ismrmrd.xsd.experimentalConditionsType(
            H1resonanceFrequency_Hz=63_500_000
        ),
        acquisitionSystemInformation=ismrmrd.xsd.acquisitionSystemInformationType(
            receiverChannels=n_coils
        ),
        encoding=[enc],
    )
    return str(header.toXML())


def make_acquisitions(
    n_coils: int = 4, n_kx: int = 64, n_ky: int = 24, n_slices: int = 2, seed: int = 0,
    traj_dims: int = 0,
) -> list[ismrmrd.Acquisition]:
    """Readouts of ``n_slices`` slices, every 2nd line plus the centre: ``(coils, kx)`` each."""
    rng = np.random.default_rng(seed)
    lines = sorted(set(range(0, n_ky, 2)) | {n_ky // 2 - 1, n_ky // 2})
    acqs = []
    scan = 0
    for s in range(n_slices):
        for j, ky in enumerate(lines):
            data = (rng.standard_normal((n_coils, n_kx))
                    + 1j * rng.standard_normal((n_coils, n_kx))).astype(np.complex64)
            traj = rng.standard_normal((n_kx, traj_dims)).astype(np.float32)
            acq = ismrmrd.Acquisition.from_array(data, traj)
            acq.idx.kspace_encode_step_1 = ky
            acq.idx.slice = s
            acq.scan_counter = scan
            acq.acquisition_time_stamp = 1000 + scan
            acq.center_sample = n_kx // 2
            acq.sample_time_us = 2.5
            if j == 0:
                acq.set_flag(ismrmrd.ACQ_FIRST_IN_SLICE)
            if j == len(lines) - 1:
                acq.set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
            acqs.append(acq)
            scan += 1
    return acqs


def write_dataset(path: Path, xml: str, acqs: list[ismrmrd.Acquisition]) -> Path:
    """Write an ISMRMRD HDF5 dataset (group ``dataset``) with ismrmrd.Dataset."""
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    try:
        ds.write_xml_header(xml.encode("utf-8"))
        for acq in acqs:
            ds.append_acquisition(acq)
    finally:
        ds.close()
    return path


@pytest.fixture(scope="session")
def recorded_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small recorded scan: 2 slices x 14 lines x 4 coils x 64 samples, with trajectory."""
    path = tmp_path_factory.mktemp("recorded") / "scan.h5"
    return write_dataset(path, make_header_xml(), make_acquisitions(traj_dims=2))


@pytest.fixture(scope="session")
def catalog() -> ChainCatalog:
    """Pass-through chain as default (inline, as shipped), plus the same chain on a
    worker thread behind a queue, selectable as "relay"."""
    spec = load_chain_config(PASSTHROUGH)
    relay = dataclasses.replace(spec, name="relay", inline=False)
    return ChainCatalog({"passthrough": spec, "relay": relay}, default="passthrough")


@pytest.fixture
def zmq_server(catalog: ChainCatalog) -> Iterator[ZmqServer]:
    """A live ZeroMQ server on a random 127.0.0.1 port, with short liveness timeouts."""
    server = ZmqServer(catalog, "tcp://127.0.0.1:0", idle_timeout_s=5.0,
                       heartbeat_ivl_ms=200, heartbeat_timeout_ms=1000, close_timeout_s=10.0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mrd_server(catalog: ChainCatalog) -> Iterator[MrdServer]:
    """A live MRD/TCP server on a random 127.0.0.1 port."""
    server = MrdServer(catalog, "127.0.0.1:0", close_timeout_s=10.0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mrd_url(mrd_server: MrdServer) -> str:
    host, port = mrd_server.address
    return f"mrd://{host}:{port}"


def wait_for(predicate: Callable[[], bool], timeout_s: float = REPLY_TIMEOUT_S) -> bool:
    """Poll ``predicate`` until true or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def same_acquisition(a: ismrmrd.Acquisition, b: ismrmrd.Acquisition) -> bool:
    """Bit-identical header, data and trajectory."""
    return (
        bytes(a._head) == bytes(b._head)
        and a.data.tobytes() == b.data.tobytes()
        and a.traj.tobytes() == b.traj.tobytes()
    )


def errors(msgs: list[Any]) -> list[ErrorReport]:
    """The ERROR replies among ``msgs``."""
    return [m for m in msgs if isinstance(m, ErrorReport)]


def acqs_of(msgs: list[Any]) -> list[ismrmrd.Acquisition]:
    """The acquisitions among ``msgs``."""
    return [m for m in msgs if isinstance(m, ismrmrd.Acquisition)]


def zmq_client(server: ZmqServer) -> ZmqStreamClient:
    """A ZeroMQ stream client connected to ``server``."""
    client = StreamClient.connect(server.endpoint)
    assert isinstance(client, ZmqStreamClient)
    return client


def fixed_id_dealer(endpoint: str, routing_id: bytes, curve: Any = None) -> zmq.Socket:
    """A DEALER with a fixed routing id that never reconnects on its own."""
    sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.setsockopt(zmq.ROUTING_ID, routing_id)
    sock.setsockopt(zmq.RECONNECT_IVL, -1)
    if curve is not None:
        curve.apply(sock)
    sock.connect(endpoint)
    return sock


def replies_until_close(sock: zmq.Socket) -> list[Any]:
    got: list[Any] = []
    while sock.poll(int(REPLY_TIMEOUT_S * 1000)):
        msgs, fault = decode_message(recv_frames(sock))
        assert fault is None
        got.extend(msgs)
        if got and isinstance(got[-1], Close):
            break
    return got


def check_takeover_isolated(server: ZmqServer, curve_a: Any = None, curve_b: Any = None) -> None:
    """A stream in flight under a fixed id; another connection takes the id over and
    streams its own subject. The newcomer's messages never enter the first stream,
    it gets exactly its own outputs, and the first session is aborted."""
    owner = fixed_id_dealer(server.endpoint, b"scanner-1", curve_a)
    first = make_acquisitions(n_slices=2, seed=1)
    for msg in [XmlHeader(make_header_xml()), *first[:5]]:  # mid-stream: no CLOSE
        owner.send_multipart(encode_frames(msg))
    echoed: list[Any] = []
    while len(acqs_of(echoed)) < 5 and owner.poll(int(REPLY_TIMEOUT_S * 1000)):
        echoed.extend(decode_message(recv_frames(owner))[0])
    # Its outputs so far were delivered: what the server sends under the id between
    # the takeover and the newcomer's first message would reach the newcomer (libzmq
    # routes by id), which is the window this test leaves out.
    assert len(acqs_of(echoed)) == 5 and len(server.sessions) == 1
    (session_a,) = server.sessions.values()
    newcomer = fixed_id_dealer(server.endpoint, b"scanner-1", curve_b)
    try:
        mine = make_acquisitions(n_slices=1, seed=2)
        for msg in [XmlHeader(make_header_xml()), *mine, Close()]:
            newcomer.send_multipart(encode_frames(msg))
        got = replies_until_close(newcomer)
    finally:
        newcomer.close(0)
        owner.close(0)
    assert got and isinstance(got[-1], Close)
    assert errors(got) == []
    back = acqs_of(got)
    assert len(back) == len(mine) and all(
        same_acquisition(a, b) for a, b in zip(mine, back, strict=True))
    assert server.takeovers == 1 and session_a.aborted
    assert wait_for(lambda: not server.sessions)
