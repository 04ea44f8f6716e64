"""Stream simulated subjects through a locally served chain and score what comes back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmtr_stream.conventions import CLASSES
from kmtr_stream.demo.report import SubjectOutcome, collect
from kmtr_stream.demo.scanner import StreamReport, stream_scan
from kmtr_stream.messages import WireMessage
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.mrd_server import MrdServer
from kmtr_stream.transport.zmq_server import ZmqServer
from simulator.config import SimConfig
from simulator.dataset import subject_id_for
from simulator.scan import ScanData, simulate_scan


@dataclass
class SubjectRun:
    """One streamed subject: its scan, what came back, and the scored outcome."""

    scan: ScanData
    report: StreamReport
    outcome: SubjectOutcome


def run_subject(
    url: str, subject_index: int, seed: int, cfg: SimConfig, *, pace: bool = True,
    timeout_s: float = 300.0, on_reply: Callable[[WireMessage], None] | None = None,
) -> SubjectRun:
    """Simulate one held-out subject, stream it to ``url`` and score the replies.

    Subjects cycle through the classes (index 0 -> NOR, 1 -> DCM, ...) and come
    from the test split, which training never sees. With ``pace`` the readouts
    go out one per TR, as a scanner sends them; ``on_reply`` sees each reply as
    it arrives.
    """
    subject_id = subject_id_for("test", subject_index)
    scan = simulate_scan(subject_id, seed, cfg, diagnosis=subject_index % len(CLASSES))
    report = stream_scan(scan, cfg, url, pace=pace, timeout_s=timeout_s, on_reply=on_reply)
    outcome = SubjectOutcome(
        subject_id=subject_id,
        true_class=CLASSES[scan.subject.diagnosis],
        true_phenotypes=dict(scan.subject.phenotypes),
        readouts=report.sent - 1,
        stream_s=report.send_s + (report.arrival_s[-1] if report.arrival_s else 0.0),
    )
    return SubjectRun(scan, report, collect(outcome, report.replies, scan.subject.labels))


def stream_subject(
    url: str, subject_index: int, seed: int, cfg: SimConfig, *, pace: bool = True,
    timeout_s: float = 300.0,
) -> SubjectOutcome:
    """``run_subject``'s scored outcome alone."""
    return run_subject(url, subject_index, seed, cfg, pace=pace, timeout_s=timeout_s).outcome


class LocalServers:
    """Both endpoints on free loopback ports, serving the given chain configs."""

    def __init__(self, configs: list[str | Path]) -> None:
        catalog = ChainCatalog.from_paths(configs)
        self.zmq = ZmqServer(catalog, "tcp://127.0.0.1:0")
        self.mrd = MrdServer(catalog, "127.0.0.1:0")

    def url(self, transport: str) -> str:
        """Client URL of the "zmq" or "mrd" endpoint."""
        if transport == "zmq":
            return self.zmq.endpoint
        host, port = self.mrd.address
        return f"mrd://{host}:{port}"

    def __enter__(self) -> LocalServers:
        self.zmq.start()
        self.mrd.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.zmq.stop()
        self.mrd.stop()
