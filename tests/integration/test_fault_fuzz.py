"""Fuzz and fault suite: damaged recorded streams against a live k-MTR server on 127.0.0.1.

A short simulated scan is written with the simulator's ISMRMRD writer and read back
as a recorded stream. Each example sends it to the live server with one message
damaged (hypothesis over ZeroMQ frames and readout contents; seeded random byte
mutations over MRD/TCP). Every example must end (CLOSE, or the server closing an
MRD/TCP stream it cannot resynchronise) within the timeout, every slice completed
before the damaged message must still get its result, and a witness client that
streams the clean recording meanwhile must get everything, without one error. At
the end the server is still serving and logged no crash. Bounded: 24 ZeroMQ and
12 MRD/TCP examples, a few seconds in all on an idle machine.
"""

from __future__ import annotations

import random
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmtr_stream.codec.stream import encode_stream
from kmtr_stream.codec.zmq_frames import encode_frames
from kmtr_stream.errors import KmtrError
from kmtr_stream.messages import Close, ErrorReport, Result, WireMessage
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.client import MrdStreamClient, StreamClient, ZmqStreamClient
from kmtr_stream.transport.dataset_io import read_dataset
from kmtr_stream.transport.mrd_server import MrdServer
from kmtr_stream.transport.zmq_server import ZmqServer
from simulator.config import SimConfig
from simulator.scan import simulate_scan
from simulator.writer import write_scan

ROOT = Path(__file__).resolve().parents[2]
CFG = SimConfig(n_slices=2, n_phases=2, n_coils=4, n_noise_readouts=4)
N_PAIRS = CFG.n_slices * CFG.n_phases
TIMEOUT_S = 120.0
CRASH_WORDS = ("crashed", "server thread failed", "emit failed", "ending the stream failed")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[WireMessage]:
    """The recorded stream: XML header, then every readout in scan order."""
    path = write_scan(simulate_scan(2, 0, CFG), CFG, tmp_path_factory.mktemp("rec"))
    return list(read_dataset(path))


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ZmqServer, MrdServer]]:
    catalog = ChainCatalog.from_paths([ROOT / "configs" / "kmtr.toml"])
    zmq_server = ZmqServer(catalog, "tcp://127.0.0.1:0", idle_timeout_s=30.0,
                           close_timeout_s=TIMEOUT_S)
    mrd_server = MrdServer(catalog, "127.0.0.1:0", close_timeout_s=TIMEOUT_S)
    with zmq_server, mrd_server:
        yield zmq_server, mrd_server


def completed_before(msgs: list[WireMessage], k: int) -> set[tuple[int, int]]:
    """(slice, phase) pairs whose last readout is among ``msgs[:k]``."""
    return {(m.idx.slice, m.idx.phase) for m in msgs[:k]
            if isinstance(m, ismrmrd.Acquisition) and m.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE)}


def slice_results(replies: list[Any]) -> set[tuple[int, int]]:
    return {(r.body["slice"], r.body["phase"]) for r in replies
            if isinstance(r, Result) and r.kind == "slice"}


class Witness:
    """Streams the clean recording over and over on its own connection; checks each run."""

    def __init__(self, url: str, msgs: list[WireMessage]) -> None:
        self.url, self.msgs = url, msgs
        self.runs: list[str] = []  # "ok" or what went wrong
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="witness", daemon=True)

    def __enter__(self) -> Witness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2 * TIMEOUT_S)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with StreamClient.connect(self.url) as client:
                    client.send_many([*self.msgs, Close()])  # one readout per message
                    back = client.receive_until_close(TIMEOUT_S)
            except KmtrError as exc:
                self.runs.append(f"failed: {exc}")
                continue
            errors = [m.message for m in back if isinstance(m, ErrorReport)]
            subjects = [m for m in back if isinstance(m, Result) and m.kind == "subject"]
            ok = not errors and len(slice_results(back)) == N_PAIRS and len(subjects) == 1
            self.runs.append("ok" if ok else f"lost: {errors}, {sorted(slice_results(back))}")


def assert_healthy(server: ZmqServer | MrdServer, caplog: pytest.LogCaptureFixture,
                   msgs: list[WireMessage], url: str) -> None:
    thread = server._thread
    assert thread is not None and thread.is_alive()
    with StreamClient.connect(url) as client:  # still serving, and correctly
        client.send_many([*msgs, Close()], pack=16)
        assert len(slice_results(client.receive_until_close(TIMEOUT_S))) == N_PAIRS
    crashes = [r.getMessage() for r in caplog.records if any(w in r.getMessage()
                                                              for w in CRASH_WORDS)]
    assert crashes == []


# -- ZeroMQ: hypothesis over frames and contents --------------------------------------
FRAME_MUTATIONS = ("flip", "cut", "grow", "drop_frame", "extra_frame", "junk")
CONTENT_MUTATIONS = ("nan", "inf", "slice", "phase", "ky", "samples", "coils", "flags",
                     "duplicate", "reorder")


def _readout(msg: WireMessage, data: Any, how: str) -> list[WireMessage]:
    """A content mutation of one readout (a well-formed message that says something wrong)."""
    assert isinstance(msg, ismrmrd.Acquisition)
    head, arr = msg.getHead(), msg.data.copy()
    value = data.draw(st.integers(0, 70_000))
    if how in ("nan", "inf"):
        arr.flat[data.draw(st.integers(0, arr.size - 1))] = np.nan if how == "nan" else np.inf
    elif how in ("slice", "phase"):
        setattr(head.idx, how, value % 65536)
    elif how == "ky":
        head.idx.kspace_encode_step_1 = value % 65536
    elif how == "flags":
        head.flags = data.draw(st.integers(0, 2**64 - 1))
    elif how == "samples":  # the header and its data agree, the stream's header does not
        n = 1 + value % 300
        arr = np.resize(arr, (arr.shape[0], n)).astype(np.complex64)
    elif how == "coils":
        arr = np.resize(arr, (1 + value % 12, arr.shape[1])).astype(np.complex64)
    if how in ("samples", "coils"):
        head.number_of_samples, head.active_channels = arr.shape[1], arr.shape[0]
        head.available_channels = arr.shape[0]
    return [ismrmrd.Acquisition(head, arr)]


@settings(max_examples=24, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def _zeromq_damaged_streams(
    servers: tuple[ZmqServer, MrdServer], recorded: list[WireMessage],
    caplog: pytest.LogCaptureFixture, data: Any,
) -> None:
    zmq_server, _ = servers
    k = data.draw(st.integers(1, len(recorded) - 1), label="damaged message")
    how = data.draw(st.sampled_from(FRAME_MUTATIONS + CONTENT_MUTATIONS), label="mutation")
    msg = recorded[k]
    with ZmqStreamClient(zmq_server.endpoint) as client:
        client.send_many(recorded[:k], pack=16)
        if how in CONTENT_MUTATIONS:
            if how == "duplicate":
                bad = [msg, msg]
            elif how == "reorder":
                bad = [recorded[min(k + 1, len(recorded) - 1)], msg]
            else:
                bad = _readout(msg, data, how)
            client.send_many(bad)
        else:
            frames = [bytes(f) for f in encode_frames(msg)]
            i = data.draw(st.integers(0, len(frames) - 1))
            if how == "flip" and frames[i]:
                j = data.draw(st.integers(0, len(frames[i]) - 1))
                frames[i] = frames[i][:j] + bytes([frames[i][j] ^ (1 << data.draw(
                    st.integers(0, 7)))]) + frames[i][j + 1:]
            elif how == "cut":
                frames[i] = frames[i][: data.draw(st.integers(0, max(0, len(frames[i]) - 1)))]
            elif how == "grow":
                frames[i] += data.draw(st.binary(min_size=1, max_size=64))
            elif how == "drop_frame" and len(frames) > 1:
                del frames[i]
            elif how == "extra_frame":
                frames.insert(i, data.draw(st.binary(max_size=64)))
            elif how == "junk":
                frames = data.draw(st.lists(st.binary(max_size=64), min_size=1, max_size=4))
            client.send_frames(frames)
        client.send_many([*recorded[k + 1:], Close()], pack=16)
        back = client.receive_until_close(TIMEOUT_S)  # never hangs: CLOSE comes
    missing = completed_before(recorded, k) - slice_results(back)
    assert missing == set(), f"{how} at #{k}: valid slices lost"


def test_zeromq_fuzz_with_witness(
    servers: tuple[ZmqServer, MrdServer], recorded: list[WireMessage],
    caplog: pytest.LogCaptureFixture,
) -> None:
    zmq_server, _ = servers
    with Witness(zmq_server.endpoint, recorded) as witness:
        _zeromq_damaged_streams(servers, recorded, caplog)
    assert witness.runs and all(r == "ok" for r in witness.runs), witness.runs
    assert_healthy(zmq_server, caplog, recorded, zmq_server.endpoint)


# -- MRD/TCP: seeded byte mutations of the stream --------------------------------------
def _mrd_example(server: MrdServer, msgs: list[WireMessage], rng: random.Random) -> None:
    """One damaged stream; every slice completed before the damage must have its result."""
    k = rng.randrange(1, len(msgs))
    wire = bytearray(encode_stream(msgs[k], text_nul=True))
    how = rng.choice(["flip", "truncate", "insert", "length", "id"])
    if how == "flip":
        for _ in range(rng.randint(1, 4)):
            wire[rng.randrange(len(wire))] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        del wire[rng.randrange(1, len(wire)):]
    elif how == "insert":
        at = rng.randrange(len(wire))
        wire[at:at] = rng.randbytes(rng.randint(1, 32))
    elif how == "length":  # an absurd size field in the acquisition header
        wire[2 + 36:2 + 38] = struct.pack("<H", rng.choice([0, 1, 65535]))
    else:
        wire[0:2] = struct.pack("<H", rng.choice([0, 7, 999, 1500, 65535]))
    host, port = server.address
    client = MrdStreamClient(host, port)
    try:
        client.send_many(msgs[:k], pack=16)
        client.send_raw(bytes(wire))
        rest = b"".join(encode_stream(m, text_nul=True) for m in [*msgs[k + 1:], Close()])
        try:
            client.send_raw(rest)
            client.shutdown_send()  # a misread length waits for bytes: end of file ends it
        except OSError:
            pass  # the server ended the stream and closed first
        back: list[Any] = []
        try:
            back = client.receive_until_close(TIMEOUT_S)
        except KmtrError as exc:  # the server may close a stream it cannot resynchronise
            assert "closed the connection" in str(exc) or "reset" in str(exc), exc
            while (m := _drain(client)) is not None:
                back.append(m)
    finally:
        client.close()
    missing = completed_before(msgs, k) - slice_results(back)
    assert missing == set(), f"{how} at #{k}: valid slices lost"


def _drain(client: MrdStreamClient) -> Any:
    try:
        return client.receive(0.0)
    except KmtrError:
        return None


def test_mrd_damaged_byte_streams_with_witness(
    servers: tuple[ZmqServer, MrdServer], recorded: list[WireMessage],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, mrd_server = servers
    host, port = mrd_server.address
    url = f"mrd://{host}:{port}"
    rng = random.Random(20260101)
    with Witness(url, recorded) as witness:
        for _ in range(12):
            _mrd_example(mrd_server, recorded, rng)
    assert witness.runs and all(r == "ok" for r in witness.runs), witness.runs
    assert_healthy(mrd_server, caplog, recorded, url)
