"""Latency bookkeeping for the chain runtime: bounded samples per stage and JSON-lines traces."""

from __future__ import annotations

import json
import threading
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

    def __init__(self, path: str | Path, connection_id: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: TextIO | None = self.path.open("w", encoding="utf-8")
        self._file.write(
            json.dumps({"connection": connection_id, "clock": "perf_counter_ns"}) + "\n"
        )

    def write(
        self, index: int | None, stage: str, message: str, t_enter_ns: int, t_leave_ns: int
    ) -> None:
        """Append one record (dropped once the writer is closed)."""
        line = (
            f'{{"index": {"null" if index is None else index}, "stage": {json.dumps(stage)}, '
            f'"message": "{message}", "t_enter_ns": {t_enter_ns}, "t_leave_ns": {t_leave_ns}}}\n'
        )
        with self._lock:
            if self._file is not None:
                self._file.write(line)

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
