"""The simulated scanner streaming live over real sockets (pass-through chain)."""

from __future__ import annotations

from pathlib import Path

import ismrmrd
import pytest

from kmtr_stream.cli import main
from kmtr_stream.demo.scanner import stream_scan
from kmtr_stream.messages import XmlHeader
from kmtr_stream.transport.mrd_server import MrdServer
from kmtr_stream.transport.zmq_server import ZmqServer
from simulator.config import SimConfig
from simulator.scan import simulate_scan
from tests.integration.conftest import REPLY_TIMEOUT_S, same_acquisition

CFG = SimConfig(
    nx=32,
    ny=32,
    fov_x_mm=100.0,
    fov_y_mm=100.0,
    n_phases=3,
    n_coils=4,
    n_calib=8,
    accel=4,
    n_noise_readouts=4,
    tr_ms=0.5,
)


def _check_echo(scan_cfg: SimConfig, url: str, pace: bool) -> None:
    scan = simulate_scan(3, 0, scan_cfg)
    sent = list(scan.acquisitions(scan_cfg))
    report = stream_scan(scan, scan_cfg, url, pace=pace, timeout_s=REPLY_TIMEOUT_S)
    assert report.errors == [] and report.sent == 1 + len(sent)
    back = [m for m in report.replies if isinstance(m, ismrmrd.Acquisition)]
    assert len(back) == len(sent)
    assert all(same_acquisition(a, b) for a, b in zip(sent, back, strict=True))
    if pace:  # one readout per TR: sending cannot be faster than the scan
        assert report.send_s >= 0.9 * (len(sent) - 1) * scan_cfg.tr_ms / 1000.0
    headers = [m for m in report.replies if isinstance(m, XmlHeader)]
    assert not headers or headers[0].xml == scan.xml(scan_cfg)


@pytest.mark.parametrize("pace", [True, False])
def test_stream_over_zeromq(zmq_server: ZmqServer, pace: bool) -> None:
    _check_echo(CFG, zmq_server.endpoint, pace)


def test_stream_over_mrd_tcp(mrd_url: str) -> None:
    _check_echo(CFG, mrd_url, pace=False)


def test_cli_stream_saves_replies(
    mrd_server: MrdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = mrd_server.address
    rc = main(
        [
            "simulate",
            "--stream",
            f"mrd://{host}:{port}",
            "--no-pace",
            "--phases",
            "2",
            "--coils",
            "2",
            "--out",
            str(tmp_path),
            "--timeout-s",
            str(REPLY_TIMEOUT_S),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "sent " in out and "saved replies" in out
    assert (tmp_path / "output.h5").exists()
