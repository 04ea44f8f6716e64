"""What a person watches: the demo's live view (under tmux), its replies taken during the
scan, and ``--report DIR`` (files, links, and the page rendered by headless Chromium)."""

from __future__ import annotations

import argparse
import html.parser
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kmtr_stream import cli_demo
from kmtr_stream.cli_demo import DEFAULT_CHAIN
from kmtr_stream.demo.run_demo import LocalServers, run_subject
from kmtr_stream.messages import Result
from simulator.config import SimConfig

ROOT = Path(__file__).resolve().parents[2]
KMTR = Path(sys.executable).with_name("kmtr-stream")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def servers() -> Iterator[LocalServers]:
    with LocalServers([DEFAULT_CHAIN]) as s:
        yield s


def test_live_replies_arrive_during_the_paced_scan(servers: LocalServers) -> None:
    seen: list[object] = []
    run = run_subject(servers.url("zmq"), 2, seed=5, cfg=SimConfig(n_phases=2, accel=4),
                      pace=True, on_reply=seen.append)
    assert seen == run.report.replies  # every reply, in order, once
    early = [t for t, m in zip(run.report.arrival_s, run.report.replies, strict=True)
             if isinstance(m, Result) and m.kind == "slice" and t < 0]
    # Slices completed mid-scan were shown before the last readout left the scanner.
    assert len(early) >= 4
    assert run.outcome.subject is not None


def test_server_observer_sees_every_output_of_every_connection() -> None:
    """``serve --live``'s hook: each connection's outputs, as its client receives them."""
    import threading

    from kmtr_stream.demo.live import LiveView
    from kmtr_stream.transport.catalog import ChainCatalog
    from kmtr_stream.transport.mrd_server import MrdServer
    from kmtr_stream.transport.zmq_server import ZmqServer

    view = LiveView(source_name="connection", max_rows=10_000)
    catalog = ChainCatalog.from_paths([DEFAULT_CHAIN])
    cfg = SimConfig(n_phases=2, accel=4)
    with ZmqServer(catalog, "tcp://127.0.0.1:0", observer=view.observe) as zs, \
            MrdServer(catalog, "127.0.0.1:0", observer=view.observe) as ms:
        host, port = ms.address
        urls = [zs.endpoint, f"mrd://{host}:{port}"]
        runs: list[object] = [None, None]

        def go(i: int) -> None:
            runs[i] = run_subject(urls[i], i, seed=9, cfg=cfg, pace=False)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    got = sum(len(r.outcome.slice_results) for r in runs)  # type: ignore[attr-defined]
    assert got == len(view.rows) == 2 * cfg.n_phases * cfg.n_slices
    assert {r.source.split("-")[0] for r in view.rows} == {"zmq", "mrd"}
    assert len(view.subjects) == 2


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.targets.append(value)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    args = argparse.Namespace(
        config=str(DEFAULT_CHAIN), subjects=2, seed=2026, accel=4, transport="zmq",
        no_pace=True, out=str(out / "out"), log_level="WARNING", threads=1, live=False,
        report=str(out / "report"),
    )
    assert cli_demo.run(args) == 0
    return out / "report"


def test_report_writes_every_linked_file(report_dir: Path) -> None:
    index = (report_dir / "index.html").read_text()
    parser = _Links()
    parser.feed(index)
    assert "results.json" in parser.targets and "latency.png" in parser.targets
    for target in parser.targets:
        assert (report_dir / target).is_file(), target
    # Per subject: its label PNG, the recorded stream, the stored replies.
    for sid in (1000000, 1000001):
        stem = f"subject_{sid:07d}"
        assert f"{stem}_labels.png" in parser.targets
        assert f"streams/{stem}.h5" in parser.targets
        assert f"replies/{stem}/messages.jsonl" in parser.targets
    assert index.count("<section class='subject'") == 2


def test_report_label_png_shows_truth_and_returned_maps(report_dir: Path) -> None:
    import matplotlib.image

    img = matplotlib.image.imread(report_dir / "subject_1000000_labels.png")[..., :3]
    # 4 rows (ED/ES truth and returned) x 8 slices: wide, and the label colours are there.
    assert img.shape[1] > img.shape[0]
    red = (img[..., 0] > img[..., 1] + 0.2) & (img[..., 0] > img[..., 2] + 0.2)
    green = (img[..., 1] > img[..., 0] + 0.2) & (img[..., 1] > img[..., 2] + 0.2)
    assert red.sum() > 500 and green.sum() > 500


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                    "chromium; .ci/run installs it)")
def test_report_renders_in_headless_chromium(report_dir: Path, tmp_path: Path) -> None:
    import matplotlib.image

    shot = tmp_path / "page.png"
    assert CHROMIUM is not None
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         "--allow-file-access-from-files", "--window-size=1200,1600",
         f"--screenshot={shot}", (report_dir / "index.html").as_uri()],
        check=True, timeout=120, capture_output=True,
    )
    page = matplotlib.image.imread(shot)[..., :3]
    assert page.shape[:2] == (1600, 1200)
    # The latency histogram's bars (#3366cc) and the label maps' LV red rendered: the
    # images loaded, not broken-image icons.
    bars = (np.abs(page - np.array([0x33, 0x66, 0xCC]) / 255.0).max(axis=-1) < 0.06).sum()
    red = ((page[..., 0] > page[..., 1] + 0.2) & (page[..., 0] > page[..., 2] + 0.2)).sum()
    assert bars > 300 and red > 300


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_live_view_under_tmux(tmp_path: Path) -> None:
    sock = f"kmtr-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", sock]
    cmd = (f"cd {ROOT} && OMP_NUM_THREADS=1 {KMTR} demo --subjects 1 --no-pace --live "
           f"--out {tmp_path}; echo DEMO-EXIT-$?; sleep 120")
    subprocess.run([*tmux, "new-session", "-d", "-x", "130", "-y", "60", cmd], check=True,
                   env={**os.environ, "TERM": "xterm-256color"})
    try:
        deadline = time.monotonic() + 240
        screen = ""
        while time.monotonic() < deadline and "DEMO-EXIT-" not in screen:
            time.sleep(1.0)
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-S", "-200"],
                                    capture_output=True, text=True).stdout
        assert "DEMO-EXIT-0" in screen, screen
        assert "slice results (streaming subject 0)" in screen
        assert "latency ms" in screen and "MYO mm²" in screen
        assert "post-last-line latency" in screen and "over 80 slices" in screen
        assert "subject 1000000: true NOR, predicted" in screen
        assert "phenotype" in screen and "from seg" in screen
        assert (tmp_path / "results.json").is_file()
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
