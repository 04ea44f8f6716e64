"""``kmtr-stream send`` against a third-party MRD server, over real sockets on 127.0.0.1.

The server here answers as python-ismrmrd-server modules do: NUL-terminated
TEXT, logging lines (``send_logging``: level padded to 8, traceback text on
failure), images whose size changes within a series, no XML header echoed,
CLOSE at the end. ``kmtr-stream send`` runs as the installed command would,
in a subprocess.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import pytest

from kmtr_stream.codec.stream import StreamReader
from kmtr_stream.messages import Close
from tests.integration.conftest import REPLY_TIMEOUT_S, make_header_xml, write_dataset
from tests.integration.conftest import make_acquisitions as acquisitions

TRACEBACK = "Traceback (most recent call last):\n  File \"recon.py\", line 3\nValueError: bad slice"
Reply = Callable[[socket.socket], None]


def text(sock: socket.socket, level: str, contents: str) -> None:
    payload = f"{level:<8} {contents}\0".encode()
    sock.sendall(struct.pack("<HI", 5, len(payload)) + payload)


def image(sock: socket.socket, shape: tuple[int, int], index: int) -> None:
    img = ismrmrd.Image.from_array(np.full(shape, index, np.int16))
    img.image_series_index, img.image_index = 1, index
    img.attribute_string = ismrmrd.Meta({"DataRole": "Image"}).serialize()
    sock.sendall(struct.pack("<H", 1022))
    img.serialize_into(lambda b: sock.sendall(bytes(b)))


class ThirdPartyServer:
    """One-connection-at-a-time MRD server: reads until CLOSE, then runs ``reply``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(REPLY_TIMEOUT_S)
        self.address = self.listener.getsockname()[:2]
        self.received: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(REPLY_TIMEOUT_S)
            for msg in StreamReader.from_socket(conn):
                self.received.append(type(msg).__name__)
                if isinstance(msg, Close):
                    break
            self.reply(conn)

    def close(self) -> None:
        self.thread.join(REPLY_TIMEOUT_S)
        self.listener.close()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "scan.h5", make_header_xml(), acquisitions(n_slices=1))


def send(server: ThirdPartyServer, dataset: Path, out: Path) -> subprocess.CompletedProcess[str]:
    host, port = server.address
    return subprocess.run(
        [sys.executable, "-m", "kmtr_stream.cli", "send", str(dataset), "--to",
         f"mrd://{host}:{port}", "--out", str(out), "--timeout-s", str(REPLY_TIMEOUT_S)],
        capture_output=True, text=True, timeout=4 * REPLY_TIMEOUT_S, check=False,
    )


@pytest.fixture
def serve() -> Iterator[Callable[[Reply], ThirdPartyServer]]:
    servers: list[ThirdPartyServer] = []

    def start(reply: Reply) -> ThirdPartyServer:
        servers.append(ThirdPartyServer(reply))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_send_saves_everything_and_names_the_servers_error(
    serve: Callable[[Reply], ThirdPartyServer], dataset: Path, tmp_path: Path
) -> None:
    def reply(sock: socket.socket) -> None:
        text(sock, "INFO", "recon started")
        image(sock, (16, 32), 0)
        image(sock, (16, 32), 1)
        image(sock, (8, 8), 2)  # same series, other size
        text(sock, "ERROR", TRACEBACK)
        sock.sendall(struct.pack("<H", 4))

    server = serve(reply)
    done = send(server, dataset, tmp_path / "out")
    assert done.returncode == 1, done.stderr
    err_lines = [ln for ln in done.stderr.splitlines() if ln.startswith("kmtr-stream send:")]
    assert err_lines == [
        "kmtr-stream send: server reported an error: [server] ValueError: bad slice "
        f"(1 error, all in {tmp_path / 'out'}/messages.jsonl)"
    ], done.stderr
    assert "Traceback" not in done.stderr  # no Python traceback of our own either
    jsonl = (tmp_path / "out" / "messages.jsonl").read_text()
    lines = [json.loads(ln) for ln in jsonl.splitlines()]
    assert lines[0] == {"type": "text", "text": "INFO     recon started"}  # no NUL kept
    assert lines[1]["type"] == "error" and lines[1]["message"] == TRACEBACK
    with h5py.File(tmp_path / "out" / "output.h5", "r") as f:
        groups = sorted(f["dataset"])
        assert "images_1" in groups and "images_1_8x8x1x1_int16" in groups
        assert f["dataset"]["images_1"]["data"].shape[0] == 2
    ds = ismrmrd.Dataset(str(tmp_path / "out" / "output.h5"), "dataset", False)
    try:  # nothing echoed the header: the one sent is saved
        assert ds.read_xml_header().decode() == make_header_xml()
        assert ds.read_image("images_1_8x8x1x1_int16", 0).data.shape == (1, 1, 8, 8)
    finally:
        ds.close()
    assert server.received[:2] == ["XmlHeader", "Acquisition"] and server.received[-1] == "Close"
    assert "the server returned no XML header" in done.stdout


def test_send_exits_0_when_all_went_well(
    serve: Callable[[Reply], ThirdPartyServer], dataset: Path, tmp_path: Path
) -> None:
    server = serve(lambda sock: (text(sock, "INFO", "done"), sock.sendall(struct.pack("<H", 4))))
    done = send(server, dataset, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert "received 1 Text" in done.stdout


def test_send_says_in_one_line_when_the_server_breaks_off(
    serve: Callable[[Reply], ThirdPartyServer], dataset: Path, tmp_path: Path
) -> None:
    server = serve(lambda sock: text(sock, "INFO", "bye"))  # no CLOSE, connection closed
    done = send(server, dataset, tmp_path / "out")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert line == f"kmtr-stream send: mrd://{server.address[0]}:{server.address[1]}: " \
        "server closed the connection without CLOSE"
    saved = (tmp_path / "out" / "messages.jsonl").read_text()
    assert json.loads(saved) == {"type": "text", "text": "INFO     bye"}


def test_send_does_not_import_the_model_or_the_chain() -> None:
    probe = (
        "import sys\nfrom kmtr_stream.cli import main\n"
        "try:\n    main(['send', '--help'])\nexcept SystemExit:\n    pass\n"
        "import kmtr_stream.transport.dataset_io\n"
        "heavy = ('torch', 'kmtr_stream.model', 'kmtr_stream.chain.runtime', 'gadgets')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
