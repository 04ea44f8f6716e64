"""Resource limits of a server, checked before anything is allocated (pure checks).

One frozen ``Limits`` holds every configurable bound with its default; the
servers, the session, the codec's stream reader and the slice buffer read it.
Each check raises ``LimitError`` naming the limit, its value and what tripped
it, so the client's ERROR and the log line say exactly which knob to turn.
The defaults are listed in ``docs/limits.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from kmtr_stream.errors import LimitError
from kmtr_stream.kspace.geometry import EncodingGeometry

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Every resource bound of one server (0 disables a bound where noted).

    Attributes:
        max_header_bytes: per message: XML header, TEXT and CONFIG_TEXT payload bytes.
        max_message_bytes: per message: any other payload (one ZeroMQ frame, one MRD message).
        max_matrix: per header: encoded and recon matrix x and y, and ky lines.
        max_coils: per header and per readout: receiver channels.
        max_slices: per header: slices the encoding limits declare.
        max_phases: per header: cardiac phases the encoding limits declare.
        max_repetitions: per header: repetitions the encoding limits declare.
        max_buffered_bytes: per connection: k-space held in open slice buffers.
        max_open_buffers: per connection: slice buffers open at once (the oldest is evicted).
        outbox_bytes: per connection: result bytes waiting to be sent.
        outbox_messages: per connection: result messages waiting to be sent.
        outbox_stall_timeout_s: a connection whose outbox stays full this long is dropped.
        max_connections: per server: open streams.
        max_threads: per server: Python threads (a new stream is refused above it).
        max_memory_bytes: per server: resident memory above which new streams are
            refused (0: no bound).
        send_timeout_s: MRD/TCP: a send to a client that reads nothing fails after this.
        idle_timeout_s: a connection without a message this long mid-stream is ended.
        drain_timeout_s: on SIGTERM, how long open streams may take to flush and close.
        log_text_chars: client text in a log line is cut to this many characters.
    """

    max_header_bytes: int = 4 * MIB
    max_message_bytes: int = 256 * MIB
    max_matrix: int = 2048
    max_coils: int = 256
    max_slices: int = 128
    max_phases: int = 256
    max_repetitions: int = 1024
    max_buffered_bytes: int = 2048 * MIB
    max_open_buffers: int = 64
    outbox_bytes: int = 64 * MIB
    outbox_messages: int = 4096
    outbox_stall_timeout_s: float = 30.0
    max_connections: int = 64
    max_threads: int = 1024
    max_memory_bytes: int = 0
    send_timeout_s: float = 30.0
    idle_timeout_s: float = 120.0
    drain_timeout_s: float = 10.0
    log_text_chars: int = 200

    @classmethod
    def names(cls) -> list[str]:
        """Every limit's name, in declaration order."""
        return [f.name for f in fields(cls)]

    def replace(self, **changes: Any) -> Limits:
        """A copy with ``changes`` (unknown names raise TypeError)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in changes:
            if name not in values:
                raise TypeError(f"unknown limit {name!r}")
        values.update(changes)
        return Limits(**values)


def check_size(limits: Limits, nbytes: int, what: str, text: bool = False) -> int:
    """``nbytes`` when within ``max_header_bytes`` (text) or ``max_message_bytes``."""
    name = "max_header_bytes" if text else "max_message_bytes"
    bound = getattr(limits, name)
    if nbytes > bound:
        raise LimitError(name, bound, f"{what} declares {nbytes} bytes")
    return nbytes


def check_header(limits: Limits, geo: EncodingGeometry, receiver_channels: int | None) -> None:
    """Refuse a header whose sizes exceed the limits, before any chain is built for it."""
    for what, value in (("encoded matrix x", geo.encoded_x), ("recon matrix x", geo.recon_x),
                        ("ky lines (matrix y / kspace_encoding_step_1)", geo.n_ky)):
        if value > limits.max_matrix:
            raise LimitError("max_matrix", limits.max_matrix, f"header declares {what} = {value}")
    for name, what, value in (("max_slices", "slices", geo.n_slices),
                              ("max_phases", "phases", geo.n_phases),
                              ("max_repetitions", "repetitions", geo.n_repetitions)):
        bound = getattr(limits, name)
        if value > bound:
            raise LimitError(name, bound, f"header encoding limits declare {value} {what}")
    if receiver_channels is not None and receiver_channels > limits.max_coils:
        raise LimitError("max_coils", limits.max_coils,
                         f"header declares {receiver_channels} receiver channels")


def check_admission(limits: Limits, open_streams: int, threads: int, rss_bytes: int) -> None:
    """Refuse one more stream when the server is at its connection, thread or memory bound."""
    if open_streams >= limits.max_connections:
        raise LimitError("max_connections", limits.max_connections,
                         f"{open_streams} streams are open; new stream refused")
    if threads >= limits.max_threads:
        raise LimitError("max_threads", limits.max_threads,
                         f"{threads} threads are running; new stream refused")
    if limits.max_memory_bytes and rss_bytes >= limits.max_memory_bytes:
        raise LimitError("max_memory_bytes", limits.max_memory_bytes,
                         f"resident memory is {rss_bytes} bytes; new stream refused")


def rss_bytes() -> int:
    """Resident memory of this process in bytes (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _malloc_trim() -> Any:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Hand freed heap pages back to the system (glibc keeps them per thread arena otherwise).

    Called when streams end, so the server's RSS returns to its baseline after clients leave.
    """
    if _TRIM is not None:
        _TRIM(0)
