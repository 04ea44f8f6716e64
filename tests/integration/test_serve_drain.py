"""``kmtr-stream serve`` drains on SIGTERM: every client gets ERROR, its outputs and CLOSE."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from kmtr_stream.messages import XmlHeader
from kmtr_stream.transport.client import StreamClient
from tests.integration.conftest import (
    PASSTHROUGH,
    REPLY_TIMEOUT_S,
    acqs_of,
    errors,
    make_acquisitions,
    make_header_xml,
)

EXE = Path(sys.executable).with_name("kmtr-stream")


def test_sigterm_sends_error_outputs_and_close_to_every_client() -> None:
    proc = subprocess.Popen(
        [str(EXE), "serve", str(PASSTHROUGH), "--zmq", "tcp://127.0.0.1:0",
         "--mrd", "127.0.0.1:0", "--drain-timeout-s", "10"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert proc.stderr is not None
        urls: dict[str, str] = {}
        for line in proc.stderr:
            if m := re.search(r"ZeroMQ server listening on (tcp://\S+)", line):
                urls["zmq"] = m.group(1)
            if m := re.search(r"MRD/TCP server listening on (\S+):(\d+)", line):
                urls["mrd"] = f"mrd://{m.group(1)}:{m.group(2)}"
            if len(urls) == 2:
                break
        acqs = make_acquisitions(n_slices=1)
        clients = [StreamClient.connect(urls["zmq"]), StreamClient.connect(urls["mrd"])]
        for c in clients:
            c.send(XmlHeader(make_header_xml()))
            c.send_many(acqs[:5])  # mid-slice: no CLOSE
        for c in clients:  # the header comes back first: the stream is open
            assert c.receive(REPLY_TIMEOUT_S) == XmlHeader(make_header_xml())
        proc.send_signal(signal.SIGTERM)
        for c in clients:
            back = c.receive_until_close(REPLY_TIMEOUT_S)
            c.close()
            (err,) = errors(back)
            assert err.code == "shutdown" and "server shutting down" in err.message
            assert len(acqs_of(back)) == 5  # every message received was returned
        assert proc.wait(REPLY_TIMEOUT_S) == 0
    finally:
        proc.kill()
        proc.wait()
