"""CurveZMQ allow-list and bind policy over real sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmtr_stream.cli import main
from kmtr_stream.errors import KmtrError
from kmtr_stream.messages import Close, XmlHeader
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.client import ClientTimeoutError, StreamClient, ZmqStreamClient
from kmtr_stream.transport.curve_auth import (
    ClientCurve,
    ServerCurve,
    curve_available,
    fingerprint,
    new_keypair,
)
from kmtr_stream.transport.mrd_server import MrdServer
from kmtr_stream.transport.zmq_server import ZmqServer
from tests.integration.conftest import (
    acqs_of,
    check_takeover_isolated,
    make_acquisitions,
    make_header_xml,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    not curve_available(), reason="pyzmq/libzmq here has no CURVE (zmq.has('curve') is False)"
)
XML = make_header_xml()
#: A refused client must get nothing in this long (it never gets anything at all).
REFUSED_WAIT_S = 2.0


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """A server key directory allowing client 'scanner'; 'intruder' has a key of its own."""
    server_dir = tmp_path / "server"
    assert main(["keys", "new", str(server_dir)]) == 0  # server.key + server.key_secret
    new_keypair(tmp_path / "scanner", "scanner")
    new_keypair(tmp_path / "intruder", "intruder")
    (server_dir / "clients").mkdir()
    shutil.copy(tmp_path / "scanner" / "scanner.key", server_dir / "clients" / "scanner.key")
    return {"dir": server_dir, "server_key": server_dir / "server.key",
            "scanner": tmp_path / "scanner" / "scanner.key_secret",
            "intruder": tmp_path / "intruder" / "intruder.key_secret"}


@pytest.fixture
def curve_server(catalog: ChainCatalog, keys: dict[str, Path]) -> Iterator[ZmqServer]:
    server = ZmqServer(catalog, "tcp://127.0.0.1:0", curve=ServerCurve.load(keys["dir"]),
                       heartbeat_ivl_ms=200, heartbeat_timeout_ms=1000, close_timeout_s=10.0)
    server.start()
    yield server
    server.stop()


def _stream(client: StreamClient, timeout_s: float) -> list[object]:
    acqs = make_acquisitions(n_slices=1)
    client.send(XmlHeader(XML))
    client.send_many(acqs)
    client.send(Close())
    return client.receive_until_close(timeout_s)


def test_keys_new_writes_a_secret_file_only_its_owner_reads(keys: dict[str, Path]) -> None:
    assert keys["dir"].joinpath("server.key_secret").stat().st_mode & 0o077 == 0
    with pytest.raises(KmtrError, match="exists already"):
        new_keypair(keys["dir"], "server")


def test_allowed_key_streams_end_to_end(curve_server: ZmqServer, keys: dict[str, Path]) -> None:
    curve = ClientCurve.from_files(keys["server_key"], keys["scanner"])
    with StreamClient.connect(curve_server.endpoint, curve=curve) as client:
        back = _stream(client, 15.0)
    assert len(acqs_of(back)) == len(make_acquisitions(n_slices=1))


def test_wrong_key_gets_nothing_and_is_logged(
    curve_server: ZmqServer, keys: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    curve = ClientCurve.from_files(keys["server_key"], keys["intruder"])
    with StreamClient.connect(curve_server.endpoint, curve=curve) as client:
        with pytest.raises(KmtrError, match="refused this client's CURVE handshake"):
            _stream(client, REFUSED_WAIT_S * 5)
    assert not curve_server.sessions  # nothing reached a session
    public = ClientCurve.from_files(keys["server_key"], keys["intruder"]).public
    assert wait_for(lambda: fingerprint(public) in caplog.text, 5.0)
    line = next(r.getMessage() for r in caplog.records if fingerprint(public) in r.getMessage())
    assert "refused" in line and "127.0.0.1" in line and public.decode() in line


def test_another_allowed_key_taking_over_a_routing_id_gets_none_of_its_stream(
    catalog: ChainCatalog, keys: dict[str, Path], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    new_keypair(tmp_path / "second", "second")
    shutil.copy(tmp_path / "second" / "second.key", keys["dir"] / "clients" / "second.key")
    server = ZmqServer(catalog, "tcp://127.0.0.1:0", curve=ServerCurve.load(keys["dir"]),
                       close_timeout_s=10.0)
    server.start()
    try:
        check_takeover_isolated(
            server,
            ClientCurve.from_files(keys["server_key"], keys["scanner"]),
            ClientCurve.from_files(keys["server_key"], tmp_path / "second" / "second.key_secret"),
        )
    finally:
        server.stop()
    line = next(r.getMessage() for r in caplog.records if "taken over" in r.getMessage())
    assert "key 'scanner'" in line and "key 'second'" in line


def test_client_without_curve_gets_nothing_and_is_logged(
    curve_server: ZmqServer, caplog: pytest.LogCaptureFixture
) -> None:
    with ZmqStreamClient(curve_server.endpoint) as client, pytest.raises(ClientTimeoutError):
        _stream(client, REFUSED_WAIT_S)
    assert not curve_server.sessions
    assert wait_for(lambda: "ZeroMQ client refused" in caplog.text, 5.0)
    assert "handshake failed" in caplog.text


def test_key_directory_without_clients_is_refused(keys: dict[str, Path]) -> None:
    shutil.rmtree(keys["dir"] / "clients")
    with pytest.raises(KmtrError, match="no client public keys"):
        ServerCurve.load(keys["dir"])


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_mrd_refuses_non_loopback_bind_without_allow_remote(
    catalog: ChainCatalog, host: str
) -> None:
    server = MrdServer(catalog, f"[{host}]:0" if ":" in host else f"{host}:0")
    with pytest.raises(KmtrError, match="--allow-remote"):
        server.start()


def test_mrd_allow_remote_listens_with_a_loud_warning(
    catalog: ChainCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    with MrdServer(catalog, "0.0.0.0:0", allow_remote=True) as server:
        assert server.address[1] > 0
    assert "SECURITY: MRD/TCP listens on '0.0.0.0'" in caplog.text


def test_unauthenticated_zmq_network_bind_warns_loudly(
    catalog: ChainCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    with ZmqServer(catalog, "tcp://*:0"):
        pass
    assert "SECURITY: ZeroMQ endpoint tcp://*:0 is not loopback and has no authentication" in (
        caplog.text)
    caplog.clear()
    with ZmqServer(catalog, "tcp://127.0.0.1:0"):
        pass
    assert "SECURITY" not in caplog.text
