"""Latency bookkeeping for the chain runtime: bounded samples per stage and JSON-lines traces."""

from __future__ import annotations

import json
import threading
from collections import deque
from pathlib import Path
from typing import Any, TextIO

import numpy as np

#: Latency samples kept per stage; older ones are overwritten (ring buffer).
MAX_SAMPLES = 65536


class LatencySamples:
    """Count and a bounded ring of durations in nanoseconds, written by one thread.

    Attributes:
        count: number of durations ever recorded (not capped).
    """

    __slots__ = ("_ring", "count")

    def __init__(self) -> None:
        self._ring: list[int] = []
        self.count = 0

    def add(self, duration_ns: int) -> None:
        """Record one duration (ns)."""
        if self.count < MAX_SAMPLES:
            self._ring.append(duration_ns)
        else:
            self._ring[self.count % MAX_SAMPLES] = duration_ns
        self.count += 1

    def summary(self) -> dict[str, Any]:
        """``{"count", "median_us", "p95_us", "max_us"}`` of kept samples (None if empty)."""
        ring = list(self._ring)  # snapshot: the writer thread may append meanwhile
        if not ring:
            return {"count": self.count, "median_us": None, "p95_us": None, "max_us": None}
        us = np.asarray(ring, dtype=np.float64) / 1000.0
        return {
            "count": self.count,
            "median_us": round(float(np.median(us)), 3),
            "p95_us": round(float(np.percentile(us, 95)), 3),
            "max_us": round(float(us.max()), 3),
        }


class TraceWriter:
    """Writes one JSON line per (message, stage) to a file; safe to call from several threads.

    Each line: ``{"index", "stage", "message", "t_enter_ns", "t_leave_ns"}``, where
    ``stage`` is a gadget id, ``"queue:<n>"`` for time spent waiting in a queue,
    or ``"emit"`` for the hand-over to the client callback. Timestamps come
    from ``time.perf_counter_ns()`` (one clock for the whole process).
    """

    #: Records formatted and written together.
    BATCH = 4096

    def __init__(self, path: str | Path, connection_id: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        # deque: append and popleft are thread-safe, so no record is lost between threads.
        self._pending: deque[tuple[int | None, str, str, int, int]] = deque()
        self._file: TextIO | None = self.path.open("w", encoding="utf-8")
        self._file.write(
            json.dumps({"connection": connection_id, "clock": "perf_counter_ns"}) + "\n"
        )

    def write(
        self, index: int | None, stage: str, message: str, t_enter_ns: int, t_leave_ns: int
    ) -> None:
        """Record one stage crossing (dropped once the writer is closed).

        Cheap enough to leave on: a tuple appended to a list (atomic under the GIL);
        formatting and the file write happen once per ``BATCH`` records.
        """
        pending = self._pending
        pending.append((index, stage, message, t_enter_ns, t_leave_ns))
        if len(pending) >= self.BATCH:
            self._drain()

    def _drain(self) -> None:
        with self._lock:
            pending = self._pending
            batch = [pending.popleft() for _ in range(len(pending))]
            if self._file is None or not batch:
                return
            self._file.write("".join(
                f'{{"index": {"null" if i is None else i}, "stage": {json.dumps(st)}, '
                f'"message": "{m}", "t_enter_ns": {a}, "t_leave_ns": {b}}}\n'
                for i, st, m, a, b in batch
            ))

    def close(self) -> None:
        """Write what is pending, flush and close the file (idempotent)."""
        self._drain()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
