"""Log lines a client cannot forge or flood.

``safe_text`` escapes control characters (an embedded newline cannot start a
fake log line) and cuts client text to a bounded length. ``SafeFormatter``
applies the same escaping to every record's message, whatever called the
logger. ``RepeatCounter`` lets the first few occurrences of one failure
through and counts the rest, so one broken stream logs a handful of lines
and a total instead of one traceback per readout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable

#: Client text in a log line is cut to this many characters by default.
LOG_TEXT_CHARS = 200


def safe_text(text: str, limit: int = LOG_TEXT_CHARS) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``), cut to ``limit`` chars."""
    escaped = escape_lines(text[:limit])
    if len(text) > limit:
        escaped += f"... ({len(text) - limit} more characters)"
    return escaped


def escape_lines(text: str) -> str:
    """Escape only CR, LF and other C0/C1 controls, keeping printable non-ASCII text."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class SafeFormatter(logging.Formatter):
    """Formatter that escapes control characters in every message (tracebacks stay multi-line)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_lines(record.message)
        return super().formatMessage(record)


class RepeatCounter:
    """Counts occurrences per key; ``first`` of each go through, the rest are counted.

    Args:
        first: occurrences of each key that are logged in full.
        max_keys: keys remembered at most; when full, every count starts afresh (so
            keys a client chooses cannot grow it without bound). None = no limit.
    """

    def __init__(self, first: int = 3, max_keys: int | None = None) -> None:
        self.first = first
        self.max_keys = max_keys
        self._counts: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def note(self, key: Hashable) -> int:
        """Count one occurrence of ``key``; returns its number (1 for the first)."""
        with self._lock:
            n = self._counts.get(key, 0) + 1
            if self.max_keys is not None and len(self._counts) >= self.max_keys:
                self._counts.clear()
            self._counts[key] = n
            return n

    @staticmethod
    def sampled(n: int, every: int = 100) -> bool:
        """True for the first occurrence and every ``every``-th after it."""
        return n == 1 or n % every == 0

    def should_log(self, key: Hashable) -> bool:
        """Count one occurrence; True while it is among the first ``first`` of its key."""
        return self.note(key) <= self.first

    def suppressed(self) -> dict[Hashable, int]:
        """Per key: occurrences counted but not logged; clears the counts."""
        with self._lock:
            out = {k: n - self.first for k, n in self._counts.items() if n > self.first}
            self._counts.clear()
        return out
