"""Batched inference across buffers and connections, without a thread of its own.

Chains of several connected scanners run in their own threads and share one
loaded model (``load_model`` is cached). ``CombiningBatcher.run`` lets a caller that
finds a free lane run the requests pending at that moment as one batch, its
own and those that came while the lanes were busy; the others wait for their
results, and each caller returns as soon as its own are done. A lone scanner
therefore pays nothing (no hand-off, no waiting window), and slices that become
ready together share one forward pass.
On a CPU whose forward passes run one thread each, several lanes keep every core
busy (one lane would leave all but one core idle under several scanners); on a
GPU one lane batches best.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import torch

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class _Request(Generic[T]):
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class CombiningBatcher(Generic[T, R]):
    """Runs ``fn`` on batches of items submitted from any number of threads.

    Each caller waits until its own items are done. Whenever a lane is free, a waiting
    caller whose items are still pending takes it and runs the oldest pending items
    (its own and others', up to ``max_batch``) as one batch, then gives the lane back.
    So a caller never serves others' batches after its own are done: under sustained
    load from many streams no stream is held hostage running everyone else's work,
    and every pending item belongs to a caller that will run it.

    Args:
        fn: maps a list of items to the list of their results (same order).
        max_batch: most items per call of ``fn``.
        lanes: most calls of ``fn`` running at once (from different threads).

    Attributes:
        batches: calls of ``fn`` so far.
        items: items run so far.
        largest: most items in one call so far.
    """

    def __init__(
        self, fn: Callable[[list[T]], list[R]], max_batch: int = 32, lanes: int = 1
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        self.fn = fn
        self.max_batch = max_batch
        self.lanes = lanes
        self._cond = threading.Condition()
        self._pending: list[_Request[T]] = []
        self._running = 0
        self.batches = 0
        self.items = 0
        self.largest = 0

    def run(self, item: T) -> R:
        """The result of one item (raises what ``fn`` raised for its batch)."""
        return self.run_many([item])[0]

    def run_many(self, items: Sequence[T]) -> list[R]:
        """Results of several items that are ready together (e.g. flushed at end of stream)."""
        reqs = [_Request(x) for x in items]
        with self._cond:
            self._pending.extend(reqs)
            while not all(r.done for r in reqs):
                if self._running < self.lanes and self._pending:
                    self._running += 1
                    batch = self._pending[: self.max_batch]
                    del self._pending[: self.max_batch]
                    self._cond.release()
                    try:
                        self._run_batch(batch)
                    finally:
                        self._cond.acquire()
                        self._running -= 1
                        self._cond.notify_all()
                else:
                    self._cond.wait()
        for r in reqs:
            if r.error is not None:
                raise r.error
        return [r.result for r in reqs]

    def _run_batch(self, batch: list[_Request[T]]) -> None:
        """Run one batch (lock not held) and mark its requests done (lock taken)."""
        results: list[R] = []
        error: BaseException | None = None
        try:
            results = self.fn([r.item for r in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
        except BaseException as exc:
            error = exc
        with self._cond:
            for i, r in enumerate(batch):
                if error is None:
                    r.result = results[i]
                r.error = error
                r.done = True
            self.batches += 1
            self.items += len(batch)
            self.largest = max(self.largest, len(batch))


#: id(owner) -> (owner, its batcher); the owner is kept so that its id is never reused.
_SHARED: dict[int, tuple[object, CombiningBatcher[Any, Any]]] = {}
_SHARED_LOCK = threading.Lock()
#: (id(owner), max_batch, lanes) already warned about, so a busy server logs each conflict once.
_WARNED: set[tuple[int, int, int]] = set()


def auto_lanes(device: torch.device) -> int:
    """Lanes for a model on ``device``: one on a GPU (it batches best), and on a CPU as many
    forward passes as fit at once, its cores over torch's threads per pass."""
    if device.type == "cuda":
        return 1
    return max(1, (os.cpu_count() or 1) // max(1, torch.get_num_threads()))


def shared_batcher(owner: object, fn: Callable[[list[Any]], list[Any]],
                   max_batch: int = 32, lanes: int = 1) -> CombiningBatcher[Any, Any]:
    """The one batcher of ``owner`` (e.g. a loaded model) in this process, made on first use.

    Its first caller's ``max_batch`` and ``lanes`` hold for every later caller; a later
    caller that asks for others is told so in the log (the batcher is shared, so one
    connection cannot change it for the others).
    """
    with _SHARED_LOCK:
        entry = _SHARED.get(id(owner))
        if entry is None:
            entry = _SHARED[id(owner)] = (owner, CombiningBatcher(fn, max_batch, lanes))
        batcher = entry[1]
        asked = (id(owner), max_batch, lanes)
        if (batcher.max_batch, batcher.lanes) != (max_batch, lanes) and asked not in _WARNED:
            _WARNED.add(asked)
            log.warning(
                "shared batcher of %s already runs with max_batch=%d, lanes=%d; "
                "this chain's max_batch=%d, lanes=%d are not used",
                type(owner).__name__, batcher.max_batch, batcher.lanes, max_batch, lanes,
            )
        return batcher
