"""The streaming chain runner: one chain instance per client stream.

Design (measured with ``benchmarks/chain_runtime.py`` and
``benchmarks/bench_throughput.py``; see ``docs/chain-config.md``): consecutive
gadgets run in one worker (``chain.worker``); a gadget with ``new_thread =
true`` starts a new worker behind its own bounded queue, so by default each
message costs one thread hand-off however many gadgets it crosses. With
``inline = true`` the first worker has no thread and the gadgets run in the
submitting thread (e.g. a server's I/O thread). Stages run and are timed in
``chain.stages``. The session parses the header once and hands it to the
runner, which builds every gadget with it. The lifecycle is one
``RunnerState``, changed under one lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

from kmtr_stream.backend import resolve_backend
from kmtr_stream.chain import registry
from kmtr_stream.chain.config import ChainSpec
from kmtr_stream.chain.delivery import Delivery
from kmtr_stream.chain.gadget import ChainContext, Gadget, StreamHeader
from kmtr_stream.chain.queues import BoundedQueue
from kmtr_stream.chain.stages import Stage
from kmtr_stream.chain.tracing import TraceWriter
from kmtr_stream.chain.worker import Worker, describe_in_flight
from kmtr_stream.errors import GadgetError, KmtrError
from kmtr_stream.limits import Limits
from kmtr_stream.messages import Close

log = logging.getLogger("kmtr_stream.chain")

class RunnerState(Enum):
    """Where a chain runner stands; every transition happens under the runner's lock."""

    CREATED = "created"  # built; start() not called yet
    RUNNING = "running"  # accepting messages
    CLOSING = "closing"  # end of stream under way: flushing, no more messages
    FINISHED = "finished"  # every output handed to emit
    ABORTED = "aborted"  # stopped without flushing (the client is gone)
    CRASHED = "crashed"  # a worker failed outside any gadget


class ChainRunner:
    """Runs one chain instance for one client stream.

    Args:
        spec: the validated chain config.
        emit: called with every wire message leaving the last gadget, in order,
            one call at a time: from the last worker's thread (for an inline
            chain without ``new_thread`` gadgets: from the thread calling
            ``submit``, or ``close`` for what the end-of-stream flush yields).
        header: the stream's parsed XML header; every gadget is built with it.
        connection_id: names the connection in logs, errors and thread names.
        trace_path: optional JSON-lines file for per-stage timestamps.
        extras: initial ``ChainContext.extras`` (e.g. a shared, loaded model).
        limits: resource limits the gadgets check before allocating (defaults: ``Limits()``).

    Example::

        header = StreamHeader.parse(xml_text)
        runner = ChainRunner(load_chain_config("configs/passthrough.toml"), send, header)
        runner.start()
        for msg in messages:
            runner.submit(msg)
        runner.close()
    """

    def __init__(
        self,
        spec: ChainSpec,
        emit: Callable[[Any], None],
        header: StreamHeader,
        connection_id: str = "local",
        trace_path: str | Path | None = None,
        extras: dict[str, Any] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.spec = spec
        self.connection_id = connection_id
        self._delivery = Delivery(emit, connection_id)
        self._trace_path = trace_path
        self._trace: TraceWriter | None = None
        self.context = ChainContext.for_stream(
            header,
            connection_id=connection_id,
            backend=spec.backend,
            logger=logging.getLogger(f"kmtr_stream.chain.{spec.name}"),
            extras=dict(extras or {}),
            limits=limits or Limits(),
            validation=spec.inputs.validation,
        )
        self.workers: list[Worker] = []
        self._state = RunnerState.CREATED
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._next_index = 0
        self._submitted = 0

    @property
    def state(self) -> RunnerState:
        """The runner's lifecycle state."""
        return self._state

    @property
    def gadgets(self) -> list[Gadget]:
        """The chain's gadget instances in chain order (empty before ``start``)."""
        return [st.gadget for w in self.workers for st in w.group.stages]

    # -- lifecycle ----------------------------------------------------
    def start(self) -> None:
        """Resolve the backend, build the gadgets and start the worker threads.

        Raises:
            ConfigError: the backend cannot be used here.
            GadgetError: a gadget's constructor failed (names the gadget).
            KmtrError: the runner was started before.
        """
        with self._lock:
            if self._state is not RunnerState.CREATED:
                raise KmtrError(
                    f"connection {self.connection_id}: chain {self.spec.name!r} already started"
                )
            self.context.backend = resolve_backend(self.spec.backend)
            groups = self._build_stages()
            if self._trace_path is not None:
                self._trace = TraceWriter(self._trace_path, self.connection_id)
                self._delivery.trace = self._trace
            for number, group in enumerate(groups):
                policy = self.spec.full_queue_policy if number == 0 else "block"
                q = BoundedQueue(
                    f"queue {number} (before gadget {group[0].id!r})", self.spec.queue_size, policy
                )
                threaded = not (number == 0 and self.spec.inline)
                self.workers.append(
                    Worker(number, group, q, threaded, self.connection_id, self._trace)
                )
            for w, nxt in zip(self.workers, [*self.workers[1:], None], strict=True):
                w.connect(nxt, self._delivery, self._on_end, self._on_crash)
            self._state = RunnerState.RUNNING
        for w in self.workers:
            w.start()

    def _build_stages(self) -> list[list[Stage]]:
        """Build every gadget with the chain's context; group them by worker."""
        groups: list[list[Stage]] = []
        for gspec in self.spec.gadgets:
            cls = registry.lookup(gspec.type_name)
            try:
                gadget = cls(gspec.id, gspec.params, self.context)
            except KmtrError:
                raise
            except Exception as exc:
                raise GadgetError(
                    gspec.id, None, f"cannot start: {type(exc).__name__}: {exc}"
                ) from exc
            if not groups or gspec.new_thread:
                groups.append([])
            groups[-1].append(Stage(gadget, gspec.id, gspec.type_name))
        return groups

    def submit(self, msg: Any, index: int | None = None) -> int:
        """Feed one incoming message; returns its message index.

        Safe for one producer thread. A ``Close`` message starts the end of
        stream like ``close()`` but does not wait; it is not forwarded to ``emit``.

        Args:
            msg: the incoming message.
            index: the message's index in the client's stream, when the caller
                numbers messages itself (e.g. counting ones it consumed); it must
                grow with every call. By default messages are numbered 0, 1, 2, ...

        Raises:
            QueueFullError: the first queue is full under ``full_queue_policy = "error"``.
            KmtrError: the runner is not running (not started, closed, aborted, crashed).
        """
        if self._state is not RunnerState.RUNNING:
            raise self._refusal()
        if type(msg) is Close:
            self._begin_close()
            return -1
        if index is None:
            index = self._next_index
        elif index < self._next_index:
            raise KmtrError(
                f"connection {self.connection_id}: message index {index} is not above the "
                f"previous one ({self._next_index - 1})"
            )
        self.workers[0].submit(index, time.perf_counter_ns(), msg)
        self._next_index = index + 1
        self._submitted += 1
        return index

    def has_room(self) -> bool:
        """``submit`` would not block on a full first queue (it may still raise)."""
        return not self.workers or self.workers[0].has_room()

    def _refusal(self) -> KmtrError:
        why = {
            RunnerState.CREATED: "submit() before start()",
            RunnerState.ABORTED: f"chain {self.spec.name!r} was aborted",
            RunnerState.CRASHED: f"chain {self.spec.name!r} was stopped by a crashed worker",
        }.get(self._state, "message after end of stream")
        return KmtrError(f"connection {self.connection_id}: {why}")

    def _begin_close(self) -> None:
        with self._lock:
            if self._state is not RunnerState.RUNNING:
                return
            self._state = RunnerState.CLOSING
        self.workers[0].end()

    def _on_end(self) -> None:
        """The last worker has flushed: everything was handed to emit."""
        with self._lock:
            if self._state is RunnerState.CLOSING:
                self._state = RunnerState.FINISHED
        self._finished.set()

    def _on_crash(self, worker: Worker) -> None:
        with self._lock:
            if self._state in (RunnerState.RUNNING, RunnerState.CLOSING):
                self._state = RunnerState.CRASHED
        self._finished.set()

    def close(self, timeout: float | None = None) -> bool:
        """End of stream: flush every gadget once, in chain order, and wait for all output.

        Idempotent. Returns True when everything was emitted, False on timeout
        (or when the chain was aborted or a worker crashed).
        """
        with self._lock:
            if self._state is RunnerState.CREATED:
                self._state = RunnerState.FINISHED
                return True
        self._begin_close()
        done = self._finished.wait(timeout)
        if done and self._state is not RunnerState.ABORTED:
            for w in self.workers:
                if w.thread is not None:
                    w.thread.join(timeout)
            if self._trace is not None:
                self._trace.close()
        return done and self._state is RunnerState.FINISHED

    def abort(self, reason: str, timeout: float = 1.0) -> None:
        """Client vanished: stop promptly, flush nothing, log what was lost.

        Logs at ERROR the connection, every message index still in flight and
        every gadget holding state. Idempotent; after a finished end of stream
        nothing is lost, so it does nothing (a client may vanish right after CLOSE).
        """
        with self._lock:
            if self._state in (RunnerState.ABORTED, RunnerState.FINISHED):
                return
            was = self._state
            self._state = RunnerState.ABORTED
        holding = ", ".join(p for w in self.workers for p in w.group.describe_state())
        log.error(
            "connection %s: chain %r aborted (%s); %s; gadgets holding state: %s",
            self.connection_id,
            self.spec.name,
            reason,
            describe_in_flight(self.workers),
            holding or "none",
        )
        if was is RunnerState.CREATED:
            return
        for w in self.workers:
            w.abort()
        deadline = time.monotonic() + timeout
        for w in self.workers:
            w.wait_stopped(deadline)
        self._finished.set()
        if self._trace is not None:
            self._trace.close()

    def stats(self) -> dict[str, Any]:
        """Counts and latencies so far (JSON-serialisable).

        Returns:
            ``{"chain", "connection", "backend", "state", "submitted", "emitted",
            "internal_at_end", "errors", "emit_failures", "end_to_end",
            "stages": [{"id", "type", "worker", "count", "median_us", "p95_us",
            "max_us"}], "queues": [{"name", "capacity", "high_water", "depth",
            "wait": {...}}]}``; ``end_to_end`` is submit -> emit (including the
            client callback) per emitted message.
        """
        stages: list[dict[str, Any]] = []
        queues: list[dict[str, Any]] = []
        for w in self.workers:
            st, q = w.stats()
            stages.extend(st)
            queues.append(q)
        out = self._delivery
        return {
            "chain": self.spec.name,
            "connection": self.connection_id,
            "backend": self.context.backend,
            "state": self._state.value,
            "submitted": self._submitted,
            "emitted": out.emitted,
            "internal_at_end": out.internal_at_end,
            "errors": sum(w.errors for w in self.workers),
            "emit_failures": out.emit_failures,
            "end_to_end": out.end_to_end.summary(),
            "stages": stages,
            "queues": queues,
        }
