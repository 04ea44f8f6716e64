"""Per-connection bounded outbox of the ZeroMQ server.

Chain threads append encoded replies to their own connection's outbox; the
I/O thread takes them off, one connection at a time, and sends until that
peer's ZeroMQ queue is full, then moves on to the next peer: a peer that
reads nothing holds up only its own outbox. An outbox above its byte or
message bound is *full*: the server stops feeding that connection's input
to its chain (it is held, bounded by the same budget) until the outbox has
drained to half, and drops the connection when it stays full for
``outbox_stall_timeout_s``.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any


class Ended:
    """Outbox marker: ``owner``'s stream is over (everything before it was sent)."""

    __slots__ = ("owner",)

    def __init__(self, owner: Any) -> None:
        self.owner = owner


def frames_bytes(item: Any) -> int:
    """Payload bytes of one encoded reply (a list of frames); markers count 0."""
    if type(item) is Ended:
        return 0
    return sum(len(f) for f in item)


class PeerOutbox:
    """Replies waiting for one connection, with their byte and message counts.

    Args:
        max_bytes: bytes above which the outbox is full.
        max_messages: messages above which the outbox is full.
    """

    def __init__(self, max_bytes: int, max_messages: int) -> None:
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.items: collections.deque[tuple[Any, int]] = collections.deque()
        self.nbytes = 0
        self.closed = False
        #: monotonic time since when the outbox has been full; 0.0 while it is not.
        self.full_since = 0.0
        #: Incoming messages held (not fed to the chain) while the outbox or the chain's
        #: first queue is full.
        self.held: collections.deque[list[Any]] = collections.deque()
        self.held_bytes = 0
        self.peak_bytes = 0
        self._lock = threading.Lock()

    def put(self, item: Any) -> None:
        """Append one reply (any thread); dropped once the connection is closed."""
        n = frames_bytes(item)
        with self._lock:
            if self.closed:
                return
            self.items.append((item, n))
            self.nbytes += n
            if self.nbytes > self.peak_bytes:
                self.peak_bytes = self.nbytes
            if not self.full_since and self._over():
                self.full_since = time.monotonic()

    def _over(self) -> bool:
        return self.nbytes > self.max_bytes or len(self.items) > self.max_messages

    def pop(self) -> Any:
        """The oldest reply (I/O thread; the outbox must not be empty)."""
        with self._lock:
            item, n = self.items.popleft()
            self.nbytes -= n
            if self.full_since and (
                self.nbytes <= self.max_bytes // 2 and len(self.items) <= self.max_messages // 2
            ):
                self.full_since = 0.0
            return item

    def push_back(self, item: Any) -> None:
        """Return a reply that could not be sent to the front (I/O thread)."""
        n = frames_bytes(item)
        with self._lock:
            self.items.appendleft((item, n))
            self.nbytes += n

    def peek(self) -> Any:
        """The oldest reply without removing it, or None when empty."""
        items = self.items
        return items[0][0] if items else None

    def close(self) -> None:
        """The connection is gone: drop everything and refuse later replies."""
        with self._lock:
            self.closed = True
            self.items.clear()
            self.held.clear()
            self.nbytes = self.held_bytes = 0
            self.full_since = 0.0

    def stall_reason(self, stall_timeout_s: float) -> str:
        """Why a connection whose outbox stayed full is dropped (both servers log it)."""
        return (
            "its outbox stayed full for more than "
            f"outbox_stall_timeout_s={stall_timeout_s:g} s ({len(self.items)} "
            f"messages, {self.nbytes} bytes waiting; limits "
            f"outbox_messages={self.max_messages}, outbox_bytes={self.max_bytes}): "
            "the client does not read its results"
        )

    @property
    def full(self) -> bool:
        """True from crossing a bound until drained to half of both."""
        return bool(self.full_since)

    def __len__(self) -> int:
        return len(self.items)
