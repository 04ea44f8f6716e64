"""A bounded FIFO between chain worker threads, drained in batches.

``queue.Queue`` wakes the consumer on every put and hands over one item per
lock round trip. Here the consumer takes everything queued in one call and
the producer only signals when the consumer is actually waiting, which keeps
the per-message hand-off cost to one short lock acquisition.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from kmtr_stream.errors import KmtrError


class QueueFullError(KmtrError):
    """A chain queue is full and its policy is "error"."""

    code = "queue_full"


class QueueClosedError(KmtrError):
    """The chain was aborted while a producer waited on a full queue."""

    code = "aborted"


class BoundedQueue:
    """Bounded FIFO with blocking or raising puts and batch gets.

    Args:
        name: name used in errors and stats (e.g. ``"queue:0 (before 'pass')"``).
        capacity: most items held at once.
        policy: "block" (``put`` waits for room) or "error" (``put`` raises).
    """

    def __init__(self, name: str, capacity: int, policy: str = "block") -> None:
        self.name = name
        self.capacity = capacity
        self.policy = policy
        self.high_water = 0
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._consumer_waiting = False
        self._producers_waiting = 0
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def would_block(self) -> bool:
        """A ``put`` now would wait for room (policy "block" and the queue is full)."""
        return self.policy == "block" and len(self._items) >= self.capacity

    def put(self, item: Any) -> None:
        """Append ``item``; wait for room (policy "block") or raise (policy "error").

        Raises:
            QueueFullError: the queue is full under policy "error".
            QueueClosedError: the queue was closed (chain aborted).
        """
        with self._lock:
            items = self._items
            while len(items) >= self.capacity:
                if self._closed:
                    raise QueueClosedError(f"{self.name}: chain aborted")
                if self.policy == "error":
                    raise QueueFullError(
                        f"{self.name} is full ({self.capacity} messages); "
                        "full_queue_policy is 'error'"
                    )
                self._producers_waiting += 1
                try:
                    self._not_full.wait()
                finally:
                    self._producers_waiting -= 1
            if self._closed:
                raise QueueClosedError(f"{self.name}: chain aborted")
            items.append(item)
            n = len(items)
            if n > self.high_water:
                self.high_water = n
            if self._consumer_waiting:
                self._not_empty.notify()

    def put_control(self, item: Any) -> None:
        """Append a control item (end of stream, abort) regardless of capacity."""
        with self._lock:
            self._items.append(item)
            self._not_empty.notify()

    def get_batch(self) -> list[Any]:
        """Wait until at least one item is queued; remove and return all queued items in order."""
        with self._lock:
            items = self._items
            while not items:
                self._consumer_waiting = True
                try:
                    self._not_empty.wait()
                finally:
                    self._consumer_waiting = False
            batch = list(items)
            items.clear()
            if self._producers_waiting:
                self._not_full.notify_all()
            return batch

    def snapshot(self) -> list[Any]:
        """The items queued right now, oldest first (a copy; for abort logs)."""
        with self._lock:
            return list(self._items)

    def close(self) -> None:
        """Wake and fail every producer waiting for room (used on abort)."""
        with self._lock:
            self._closed = True
            self._not_full.notify_all()
