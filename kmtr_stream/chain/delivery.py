"""The chain's output end: wire messages to the client callback, counted and timed."""

from __future__ import annotations

import logging
import time
import typing
from collections.abc import Callable
from typing import Any

from kmtr_stream.chain.tracing import LatencySamples, TraceWriter
from kmtr_stream.messages import WireMessage

log = logging.getLogger("kmtr_stream.chain")

#: Message classes that may leave the chain towards the client.
WIRE_TYPES: tuple[type, ...] = typing.get_args(WireMessage)


class Delivery:
    """Sink of the last worker: hands each wire message to ``emit``; internal ones stop here.

    Called by one thread at a time (the last worker's), so its counters need no lock.

    Args:
        emit: the client callback.
        connection_id: names the connection in logs.
    """

    def __init__(self, emit: Callable[[Any], None], connection_id: str) -> None:
        self.emit = emit
        self.connection_id = connection_id
        self.trace: TraceWriter | None = None
        self.emitted = 0
        self.internal_at_end = 0
        self.emit_failures = 0
        #: submit -> emit (including the callback) per emitted message of a known index.
        self.end_to_end = LatencySamples()

    def __call__(self, index: int | None, t_submit: int, msg: Any) -> None:
        """Deliver one message that left the last stage."""
        if not isinstance(msg, WIRE_TYPES):
            self.internal_at_end += 1
            log.debug(
                "connection %s: internal %s reached the chain end",
                self.connection_id,
                type(msg).__name__,
            )
            return
        t0 = time.perf_counter_ns()
        try:
            self.emit(msg)
        except Exception:
            self.emit_failures += 1
            log.exception(
                "connection %s: emit failed for %s of message #%s",
                self.connection_id,
                type(msg).__name__,
                index,
            )
            return
        self.emitted += 1
        if index is not None:
            t1 = time.perf_counter_ns()
            self.end_to_end.add(t1 - t_submit)
            if self.trace is not None:
                self.trace.write(index, "emit", type(msg).__name__, t0, t1)
