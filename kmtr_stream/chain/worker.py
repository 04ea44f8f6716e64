"""Chain workers: one stage group each, on a thread behind a bounded queue or inline.

A threaded worker takes every queued message in one lock round trip (batch
drain) and runs it through its stages; an inline worker is the same worker
without a thread: ``submit`` runs the stages in the caller's thread (no
hand-off, no wake-up), serialised with the end-of-stream flush and the abort
by one re-entrant lock (an emit callback may abort the chain it runs in).
Workers know only their successor and three callbacks; they never reach into
the runner.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kmtr_stream.chain.queues import BoundedQueue, QueueClosedError
from kmtr_stream.chain.stages import Sink, Stage, StageGroup
from kmtr_stream.chain.tracing import LatencySamples, TraceWriter
from kmtr_stream.errors import KmtrError

log = logging.getLogger("kmtr_stream.chain")

_END = object()  # control item: end of stream, flush
_ABORT = object()  # control item: stop now


class Worker:
    """Runs consecutive stages, fed by ``submit`` (worker 0) or by the previous worker.

    Args:
        number: position in the chain (0 = the first worker).
        stages: its stages, in chain order.
        inq: its bounded input queue (an inline worker never fills it).
        threaded: run in a thread of its own; False = inline in the submitting thread.
        connection_id: names the connection in logs and the thread name.
        trace: optional trace writer.
    """

    def __init__(
        self,
        number: int,
        stages: list[Stage],
        inq: BoundedQueue,
        threaded: bool,
        connection_id: str = "local",
        trace: TraceWriter | None = None,
    ) -> None:
        self.number = number
        self.inq = inq
        self.connection_id = connection_id
        self.trace = trace
        self.group = StageGroup(stages, self._unconnected, connection_id, trace)
        self.next: Worker | None = None
        self.wait_samples = LatencySamples()
        #: Index of the message in its stages right now (abort logs name it).
        self.current_index: int | None = None
        self.aborted = False
        self._batch: list[Any] = []
        self._pos = 0
        self._on_end: Callable[[], None] = lambda: None
        self._on_crash: Callable[[Worker], None] = lambda w: None
        self._lock = threading.RLock()
        self.thread: threading.Thread | None = None
        if threaded:
            self.thread = threading.Thread(
                target=self._main, name=f"chain-{connection_id}-w{number}", daemon=True
            )

    @staticmethod
    def _unconnected(index: int | None, t_submit: int, msg: Any) -> None:
        raise RuntimeError("worker output is not connected")

    def connect(
        self,
        downstream: Worker | None,
        deliver: Sink,
        on_end: Callable[[], None],
        on_crash: Callable[[Worker], None],
    ) -> None:
        """Send outputs to ``downstream``'s queue, or (last worker) to ``deliver``.

        ``on_end`` is called once the last worker has flushed; ``on_crash`` when
        this worker fails outside any gadget.
        """
        self.next = downstream
        self.group.sink = downstream.enqueue if downstream is not None else deliver
        self._on_end = on_end
        self._on_crash = on_crash

    @property
    def inline(self) -> bool:
        """True: runs in the submitting thread (``ChainSpec.inline``)."""
        return self.thread is None

    @property
    def errors(self) -> int:
        """Gadget failures reported by this worker's stages."""
        return self.group.errors

    def start(self) -> None:
        """Start the thread (an inline worker has none)."""
        if self.thread is not None:
            self.thread.start()

    # -- producer side --------------------------------------------------
    def enqueue(self, index: int | None, t_submit: int, msg: Any) -> None:
        """Queue one message from the previous worker (blocks while the queue is full)."""
        self.inq.put((index, t_submit, msg, time.perf_counter_ns()))

    def has_room(self) -> bool:
        """``submit`` would not block: an inline worker, or a queue that takes one more."""
        return self.thread is None or not self.inq.would_block

    def submit(self, index: int, t_submit: int, msg: Any) -> None:
        """Feed one incoming message: queue it, or run it here when inline.

        Raises:
            QueueFullError: the queue is full under policy "error".
            QueueClosedError: the chain was aborted while this call waited for room.
            KmtrError: an inline worker failed outside any gadget (it is stopped).
        """
        if self.thread is not None:
            self.inq.put((index, t_submit, msg, t_submit))
            return
        with self._lock:
            if self.aborted:
                return  # aborted by another thread just now: nothing runs any more
            self.current_index = index
            try:
                self.group.push(index, t_submit, msg)
            except QueueClosedError:
                pass  # aborted meanwhile: a later worker's queue was closed
            except Exception as exc:
                self.crashed()
                raise KmtrError(
                    f"connection {self.connection_id}: chain worker {self.number} failed in "
                    f"message #{index}: {type(exc).__name__}: {exc}"
                ) from exc
            finally:
                self.current_index = None

    def end(self) -> None:
        """End of stream: flush (here when inline, in the thread otherwise), then pass it on."""
        if self.thread is not None:
            self.inq.put_control(_END)
            return
        with self._lock:
            if self.aborted:
                return
            try:
                self.group.flush()
            except QueueClosedError:
                return  # aborted meanwhile: a later worker's queue was closed
            except Exception:
                self.crashed()
                return
            self._pass_end()

    def abort(self) -> None:
        """Stop promptly: wake a blocked producer, drop what is queued, tell the stages."""
        self.aborted = True
        self.inq.close()
        self.inq.put_control(_ABORT)

    def abort_inline(self, timeout: float) -> bool:
        """Inline worker: wait up to ``timeout`` s for a message in progress, then stop the stages.

        Returns:
            False when the message in progress did not finish in time.
        """
        if not self._lock.acquire(timeout=timeout):
            return False
        try:
            self._stop()
        finally:
            self._lock.release()
        return True

    def wait_stopped(self, deadline: float) -> None:
        """After ``abort``: wait until ``deadline`` (monotonic s) for the stages to stop.

        An inline worker waits for a message in progress in the submitting
        thread, then calls the stages' ``on_abort`` here. A worker still busy
        at the deadline is logged with the message it is in.
        """
        left = max(0.0, deadline - time.monotonic())
        if self.thread is None:
            if not self.abort_inline(left):
                log.error(
                    "connection %s: inline chain still busy in message #%s after abort",
                    self.connection_id, self.current_index,
                )
            return
        self.thread.join(left)
        if self.thread.is_alive():
            log.error(
                "connection %s: worker %d still busy in message #%s after abort",
                self.connection_id, self.number, self.current_index,
            )

    def crashed(self) -> None:
        """Log an unexpected failure of this worker and stop the chain behind it."""
        log.exception("connection %s: chain worker %d crashed", self.connection_id, self.number)
        self._on_crash(self)
        if self.next is not None:
            self.next.inq.put_control(_ABORT)

    # -- introspection (snapshots; the threads keep running) --------------
    def in_flight(self) -> set[int]:
        """Indices of messages queued for or inside this worker."""
        found = set() if self.current_index is None else {self.current_index}
        pending = list(self._batch)[self._pos + 1 :] + self.inq.snapshot()
        found.update(item[0] for item in pending if isinstance(item, tuple) and item[0] is not None)
        return found

    def stats(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Per-stage sample summaries and this worker's queue summary."""
        stages = [
            {"id": st.id, "type": st.type_name, "worker": self.number, **st.samples.summary()}
            for st in self.group.stages
        ]
        queue = {
            "name": self.inq.name,
            "capacity": self.inq.capacity,
            "high_water": self.inq.high_water,
            "depth": len(self.inq),
            "wait": self.wait_samples.summary(),
        }
        return stages, queue

    # -- internals --------------------------------------------------------
    def _pass_end(self) -> None:
        if self.next is not None:
            self.next.inq.put_control(_END)
        else:
            self._on_end()

    def _stop(self) -> None:
        self.group.abort()
        if self.next is not None:
            self.next.inq.put_control(_ABORT)

    def _main(self) -> None:
        trace = self.trace
        label = f"queue:{self.number}"
        try:
            while True:
                batch = self.inq.get_batch()
                self._batch = batch
                for pos, item in enumerate(batch):
                    self._pos = pos
                    if self.aborted or item is _ABORT:
                        self._stop()
                        return
                    if item is _END:
                        self.group.flush()
                        self._pass_end()
                        return
                    index, t_submit, msg, t_put = item
                    self.current_index = index
                    now = time.perf_counter_ns()
                    self.wait_samples.add(now - t_put)
                    if trace is not None:
                        trace.write(index, label, type(msg).__name__, t_put, now)
                    self.group.push(index, t_submit, msg)
                    self.current_index = None
                self._batch = []
        except QueueClosedError:
            self._stop()
        except BaseException:
            self.crashed()


def _ranges(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"#3..#5, #9"`` (sorted input)."""
    parts: list[str] = []
    start = prev = indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(f"#{start}" if start == prev else f"#{start}..#{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)


def describe_in_flight(workers: list[Worker]) -> str:
    """Messages in flight, busy workers and queue depths, for an abort's log line."""
    indices = sorted(set().union(*(w.in_flight() for w in workers)))
    if not indices:
        text = "no messages in flight"
    else:
        noun = "message" if len(indices) == 1 else "messages"
        text = f"{len(indices)} {noun} in flight ({_ranges(indices)})"
    busy = [
        f"worker {w.number} in #{w.current_index}" for w in workers if w.current_index is not None
    ]
    depths = [f"{w.inq.name}: {len(w.inq)} queued" for w in workers]
    return "; ".join([text, *busy, *depths])
