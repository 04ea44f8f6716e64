"""The simulated scanner as a client: one simulated scan streamed to a k-MTR Stream server.

Sends the XML header, the acquisitions in streaming order (see
:mod:`simulator.acquisitions`) paced at one readout per TR (or as fast as
possible) and CLOSE, then collects the server's replies up to its CLOSE. It
lives here, above both the simulator and the transport, so the simulator
itself never imports the transport.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ismrmrd

from kmtr_stream.messages import Close, ConfigFile, ErrorReport, WireMessage, XmlHeader
from kmtr_stream.transport.client import ClientTimeoutError, StreamClient
from simulator.config import SimConfig
from simulator.scan import ScanData


@dataclass
class StreamReport:
    """What one live stream sent and got back.

    Attributes:
        sent: messages sent (header and acquisitions, CLOSE not counted).
        send_s: wall time spent sending.
        replies: messages received before the server's CLOSE.
        arrival_s: per reply, seconds after the last acquisition was sent.
    """

    sent: int = 0
    send_s: float = 0.0
    replies: list[WireMessage] = field(default_factory=list)
    arrival_s: list[float] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        """Messages of the ERROR replies."""
        return [m.message for m in self.replies if isinstance(m, ErrorReport)]


def paced(
    acquisitions: Iterable[ismrmrd.Acquisition], tr_s: float
) -> Iterable[ismrmrd.Acquisition]:
    """Yield one acquisition per ``tr_s`` seconds (no drift: deadlines are absolute)."""
    start = time.perf_counter()
    for n, acq in enumerate(acquisitions):
        wait = start + n * tr_s - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        yield acq


def stream_scan(
    scan: ScanData,
    cfg: SimConfig,
    url: str,
    *,
    pace: bool = True,
    chain: str | None = None,
    timeout_s: float = 120.0,
    on_reply: Callable[[WireMessage], None] | None = None,
) -> StreamReport:
    """Stream ``scan`` to ``url`` and collect the replies.

    Args:
        scan: the simulated scan.
        cfg: its configuration (TR used for pacing).
        url: ``tcp://host:port`` (ZeroMQ) or ``mrd://host:port`` (MRD/TCP).
        pace: send one readout per TR (real time) instead of as fast as possible.
        chain: server-side chain to select with CONFIG_FILE, or None for the default.
        timeout_s: how long to wait for the server's CLOSE after the last readout.
        on_reply: called with each reply as it arrives; with it, replies are also
            taken while sending, so a live view shows results during the scan.

    Raises:
        ClientTimeoutError: no CLOSE within ``timeout_s`` (``received`` holds what came).
    """
    report = StreamReport()
    received_at: list[float] = []
    acqs: Iterable[ismrmrd.Acquisition] = scan.acquisitions(cfg)
    if pace:
        acqs = paced(acqs, cfg.tr_ms / 1000.0)
    with StreamClient.connect(url) as client:

        def take(msg: WireMessage) -> None:
            report.replies.append(msg)
            received_at.append(time.perf_counter())
            if on_reply is not None:
                on_reply(msg)

        closed_early = False

        def taking_replies(items: Iterable[ismrmrd.Acquisition]) -> Iterator[ismrmrd.Acquisition]:
            # Same thread as the sends (a ZeroMQ socket is not thread-safe): poll between them.
            nonlocal closed_early
            for acq in items:
                while (msg := client.receive(0.0)) is not None:
                    if isinstance(msg, Close):  # the server ended the stream: stop sending
                        closed_early = True
                        return
                    take(msg)
                yield acq

        t0 = time.perf_counter()
        if chain is not None:
            client.send(ConfigFile(chain))
        client.send(XmlHeader(scan.xml(cfg)))
        if on_reply is not None:
            acqs = taking_replies(acqs)
        # Unpaced, the whole scan is in hand: pack it; paced, each readout leaves at once.
        report.sent = 1 + client.send_many(acqs, pack=1 if pace else 16)
        if not closed_early:
            client.send(Close())
        t_end = time.perf_counter()
        report.send_s = t_end - t0
        deadline = t_end + timeout_s
        while not closed_early:
            left = deadline - time.perf_counter()
            msg = client.receive(left) if left > 0 else None
            if msg is None:
                raise ClientTimeoutError(
                    f"{url}: no CLOSE within {timeout_s:g} s ({len(report.replies)} replies)",
                    report.replies,
                )
            if isinstance(msg, Close):
                break
            take(msg)
        report.arrival_s = [t - t_end for t in received_at]
        return report


def save_replies(report: StreamReport, out_dir: str | Path, header_xml: str | None = None) -> Path:
    """Store replies with the transport's ResultWriter (``output.h5``, ``messages.jsonl``)."""
    from kmtr_stream.transport.dataset_io import ResultWriter

    writer = ResultWriter(out_dir, header_xml)
    try:
        for msg in report.replies:
            writer.write(msg)
    finally:
        writer.close()
    return Path(out_dir)
