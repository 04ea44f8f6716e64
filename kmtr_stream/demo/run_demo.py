"""Stream simulated subjects through a locally served chain and score what comes back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kmtr_stream.conventions import CLASSES
from kmtr_stream.demo.report import SubjectOutcome, collect
from kmtr_stream.demo.scanner import stream_scan
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.mrd_server import MrdServer
from kmtr_stream.transport.zmq_server import ZmqServer
from simulator.config import SimConfig
from simulator.dataset import subject_id_for
from simulator.scan import simulate_scan


def stream_subject(
    url: str, subject_index: int, seed: int, cfg: SimConfig, *, pace: bool = True,
    timeout_s: float = 300.0,
) -> SubjectOutcome:
    """Simulate one held-out subject, stream it to ``url`` and score the replies.

    Subjects cycle through the classes (index 0 -> NOR, 1 -> DCM, ...) and come
    from the test split, which training never sees. With ``pace`` the readouts
    go out one per TR, as a scanner sends them.
    """
    subject_id = subject_id_for("test", subject_index)
    scan = simulate_scan(subject_id, seed, cfg, diagnosis=subject_index % len(CLASSES))
    report = stream_scan(scan, cfg, url, pace=pace, timeout_s=timeout_s)
    outcome = SubjectOutcome(
        subject_id=subject_id,
        true_class=CLASSES[scan.subject.diagnosis],
        true_phenotypes=dict(scan.subject.phenotypes),
        readouts=report.sent - 1,
        stream_s=report.send_s + (report.arrival_s[-1] if report.arrival_s else 0.0),
    )
    return collect(outcome, report.replies, scan.subject.labels)


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
