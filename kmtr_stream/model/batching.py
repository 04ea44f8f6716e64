"""Batched inference across buffers and connections, without a thread of its own.

Chains of several connected scanners run in their own threads and share one
loaded model (``load_model`` is cached). ``CombiningBatcher.run`` lets the first
caller that finds the network idle run every request pending at that moment as
one batch, its own and those that came while the network was busy; the others
wait for their results. A lone scanner therefore pays nothing (no hand-off, no
waiting window), and slices that become ready together share one forward pass.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Request(Generic[T]):
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class CombiningBatcher(Generic[T, R]):
    """Runs ``fn`` on batches of items submitted from any number of threads.

    Args:
        fn: maps a list of items to the list of their results (same order).
        max_batch: most items per call of ``fn``.

    Attributes:
        batches: calls of ``fn`` so far.
        items: items run so far.
    """

    def __init__(self, fn: Callable[[list[T]], list[R]], max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.fn = fn
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[_Request[T]] = []
        self._busy = False
        self.batches = 0
        self.items = 0
        self.largest = 0

    def run(self, item: T) -> R:
        """The result of one item (raises what ``fn`` raised for its batch)."""
        return self.run_many([item])[0]

    def run_many(self, items: Sequence[T]) -> list[R]:
        """Results of several items that are ready together (e.g. flushed at end of stream)."""
        reqs = [_Request(x) for x in items]
        with self._lock:
            self._pending.extend(reqs)
            lead = not self._busy
            self._busy = True
        if lead:
            self._serve()
        for r in reqs:
            r.done.wait()
        for r in reqs:
            if r.error is not None:
                raise r.error
        return [r.result for r in reqs]

    def _serve(self) -> None:
        """Run pending batches until none is left, then hand the network back."""
        while True:
            with self._lock:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                if not batch:
                    self._busy = False
                    return
            try:
                results = self.fn([r.item for r in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
                for r, res in zip(batch, results, strict=True):
                    r.result = res
            except BaseException as exc:
                for r in batch:
                    r.error = exc
            self.batches += 1
            self.items += len(batch)
            self.largest = max(self.largest, len(batch))
            for r in batch:
                r.done.set()


#: id(owner) -> (owner, its batcher); the owner is kept so that its id is never reused.
_SHARED: dict[int, tuple[object, CombiningBatcher[Any, Any]]] = {}
_SHARED_LOCK = threading.Lock()


def shared_batcher(owner: object, fn: Callable[[list[Any]], list[Any]],
                   max_batch: int = 32) -> CombiningBatcher[Any, Any]:
    """The one batcher of ``owner`` (e.g. a loaded model) in this process, made on first use."""
    with _SHARED_LOCK:
        entry = _SHARED.get(id(owner))
        if entry is None:
            entry = _SHARED[id(owner)] = (owner, CombiningBatcher(fn, max_batch))
        return entry[1]
