"""The streaming chain runner: gadgets in worker threads behind bounded queues.

Design (measured, see ``benchmarks/chain_passthrough.py`` and
``docs/chain-config.md``): consecutive gadgets run inline in one worker thread;
a gadget with ``new_thread = true`` starts a new worker behind its own bounded
queue. By default a whole chain is one worker, so each message costs a single
thread hand-off (producer -> worker) however many cheap gadgets it crosses.
Workers take every queued message in one lock round trip (batch drain).
With ``inline = true`` the first group of gadgets runs in the submitting
thread itself (no queue, no hand-off, no wake-up): the cheapest path for
chains of cheap gadgets, e.g. straight in a server's I/O thread.

Per message and stage the runner takes ``time.perf_counter_ns()`` on entry and
exit, aggregates the durations for ``stats()`` and optionally writes them as
JSON lines (``trace_path``).
"""

from __future__ import annotations

import logging
import threading
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ismrmrd.xsd

from kmtr_stream.backend import resolve_backend
from kmtr_stream.chain import registry
from kmtr_stream.chain.config import ChainSpec, GadgetSpec
from kmtr_stream.chain.gadget import ChainContext, Gadget, MessageTimes
from kmtr_stream.chain.queues import BoundedQueue, QueueClosedError
from kmtr_stream.chain.tracing import LatencySamples, TraceWriter
from kmtr_stream.errors import GadgetError, KmtrError, ProtocolError
from kmtr_stream.messages import Close, ErrorReport, WireMessage, XmlHeader

log = logging.getLogger("kmtr_stream.chain")

#: Message classes that may leave the chain towards the client.
WIRE_TYPES: tuple[type, ...] = typing.get_args(WireMessage)

_END = object()  # control item: end of stream, flush
_ABORT = object()  # control item: stop now


def _type_label(msg: Any) -> str:
    return type(msg).__name__


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


class _Stage:
    """One gadget and its latency samples."""

    __slots__ = ("flushed", "gadget", "handles", "samples", "spec")

    def __init__(self, spec: GadgetSpec, gadget: Gadget) -> None:
        self.spec = spec
        self.gadget = gadget
        self.handles = tuple(gadget.handles)
        self.samples = LatencySamples()
        self.flushed = False


class _Worker:
    """A thread running consecutive stages inline, fed by one bounded queue."""

    def __init__(
        self,
        runner: ChainRunner,
        number: int,
        stages: list[_Stage],
        inq: BoundedQueue,
        inline: bool = False,
    ) -> None:
        self.runner = runner
        self.number = number
        #: True: runs in the submitting thread (``ChainSpec.inline``); its thread never starts.
        self.inline = inline
        self.stages = stages
        self.inq = inq
        self.next: _Worker | None = None
        self.wait_samples = LatencySamples()
        self.current_index: int | None = None
        self.batch: list[Any] = []
        self.pos = 0
        self.thread = threading.Thread(
            target=self._main,
            name=f"chain-{runner.connection_id}-w{number}",
            daemon=True,
        )

    # -- message path -------------------------------------------------
    def _run(self, k: int, index: int | None, t_submit: int, msg: Any) -> None:
        """Push ``msg`` through stages ``k..`` of this worker, then hand it on."""
        runner = self.runner
        stages = self.stages
        n = len(stages)
        while k < n:
            st = stages[k]
            if type(msg) is XmlHeader:
                self._on_header(st, index, t_submit)
            if not isinstance(msg, st.handles):
                k += 1
                continue
            t0 = time.perf_counter_ns()
            runner.context._local.times = MessageTimes(index, t_submit, t0)
            outs: list[Any] = []
            try:
                # extend() keeps what was yielded before a failure; the report follows it.
                outs.extend(st.gadget.process(msg))
            except Exception as exc:
                outs.append(runner._report(st.spec.id, index, exc, "process"))
            t1 = time.perf_counter_ns()
            runner.context._local.times = None
            st.samples.add(t1 - t0)
            if runner._trace is not None:
                runner._trace.write(index, st.spec.id, _type_label(msg), t0, t1)
            k += 1
            if len(outs) == 1:
                msg = outs[0]
                continue
            for out in outs:
                self._run(k, index, t_submit, out)
            return
        if self.next is not None:
            self.next.inq.put((index, t_submit, msg, time.perf_counter_ns()))
        else:
            runner._deliver(index, t_submit, msg)

    def _on_header(self, st: _Stage, index: int | None, t_submit: int) -> None:
        header = self.runner.context.header
        if header is None:
            return
        try:
            st.gadget.on_header(header)
        except Exception as exc:
            err = self.runner._report(st.spec.id, index, exc, "on_header")
            self._run(self.stages.index(st) + 1, index, t_submit, err)

    def _flush(self) -> None:
        for k, st in enumerate(self.stages):
            if st.flushed:
                continue
            st.flushed = True
            t0 = time.perf_counter_ns()
            self.runner.context._local.times = MessageTimes(None, t0, t0)
            outs: list[Any] = []
            try:
                outs.extend(st.gadget.flush())
            except Exception as exc:
                outs.append(self.runner._report(st.spec.id, None, exc, "flush"))
            self.runner.context._local.times = None
            t1 = time.perf_counter_ns()
            if self.runner._trace is not None:
                self.runner._trace.write(None, st.spec.id, "flush", t0, t1)
            for out in outs:
                self._run(k + 1, None, t0, out)

    def run_inline(self, index: int, t_submit: int, msg: Any) -> None:
        """Process one submitted message in the caller's thread (inline worker 0)."""
        self.current_index = index
        if type(msg) is XmlHeader:
            err = self.runner._parse_header(msg, index)
            if err is not None:
                self._run(0, index, t_submit, err)
        self._run(0, index, t_submit, msg)
        self.current_index = None

    def crashed(self) -> None:
        """Log an unexpected failure of this worker and stop the chain behind it."""
        runner = self.runner
        log.exception("connection %s: chain worker %d crashed", runner.connection_id, self.number)
        runner._crashed = True
        runner._finished.set()
        if self.next is not None:
            self.next.inq.put_control(_ABORT)

    # -- thread loop --------------------------------------------------
    def _main(self) -> None:
        runner = self.runner
        try:
            while True:
                batch = self.inq.get_batch()
                self.batch = batch
                for pos, item in enumerate(batch):
                    self.pos = pos
                    if runner._aborted:
                        self._abort_stages()
                        return
                    if item is _END:
                        self._flush()
                        if self.next is not None:
                            self.next.inq.put_control(_END)
                        else:
                            runner._finished.set()
                        return
                    if item is _ABORT:
                        self._abort_stages()
                        return
                    index, t_submit, msg, t_put = item
                    self.current_index = index
                    now = time.perf_counter_ns()
                    self.wait_samples.add(now - t_put)
                    if runner._trace is not None:
                        runner._trace.write(
                            index, f"queue:{self.number}", _type_label(msg), t_put, now
                        )
                    if self.number == 0 and type(msg) is XmlHeader:
                        err = runner._parse_header(msg, index)
                        if err is not None:
                            self._run(0, index, t_submit, err)
                    self._run(0, index, t_submit, msg)
                    self.current_index = None
                self.batch = []
        except QueueClosedError:
            self._abort_stages()
        except BaseException:
            self.crashed()

    def _abort_stages(self) -> None:
        for st in self.stages:
            try:
                st.gadget.on_abort()
            except Exception:
                log.exception(
                    "connection %s: gadget %r failed in on_abort",
                    self.runner.connection_id,
                    st.spec.id,
                )
        if self.next is not None:
            self.next.inq.put_control(_ABORT)


class ChainRunner:
    """Runs one chain instance for one client connection.

    Args:
        spec: the validated chain config.
        emit: called with every wire message leaving the last gadget, in order,
            from the last worker thread, one call at a time (for an inline chain
            without ``new_thread`` gadgets: from the thread calling ``submit``,
            or ``close`` for what the end-of-stream flush yields).
        connection_id: names the connection in logs, errors and thread names.
        trace_path: optional JSON-lines file for per-stage timestamps.
        extras: initial ``ChainContext.extras`` (e.g. a shared, loaded model).

    Example::

        runner = ChainRunner(load_chain_config("configs/passthrough.toml"), emit=send)
        runner.start()
        for msg in messages:
            runner.submit(msg)
        runner.close()
    """

    def __init__(
        self,
        spec: ChainSpec,
        emit: Callable[[Any], None],
        connection_id: str = "local",
        trace_path: str | Path | None = None,
        extras: dict[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.connection_id = connection_id
        self._emit = emit
        self._trace_path = trace_path
        self._trace: TraceWriter | None = None
        self.context = ChainContext(
            connection_id=connection_id,
            backend=spec.backend,
            logger=logging.getLogger(f"kmtr_stream.chain.{spec.name}"),
            extras=dict(extras or {}),
        )
        self._workers: list[_Worker] = []
        # Inline worker 0: serialises submit, the end-of-stream flush and on_abort.
        self._inline_lock = threading.RLock()
        self._next_index = 0
        self._submitted = 0
        self._count_lock = threading.Lock()
        self._started = False
        self._closing = False
        self._aborted = False
        self._crashed = False
        self._finished = threading.Event()
        self._close_lock = threading.Lock()
        self._emitted = 0
        self._internal_at_end = 0
        self._errors = 0
        self._emit_failures = 0
        self._e2e = LatencySamples()

    # -- lifecycle ----------------------------------------------------
    def start(self) -> None:
        """Resolve the backend, build the gadgets and start the worker threads.

        Raises:
            ConfigError: the backend cannot be used here.
            GadgetError: a gadget's constructor failed (names the gadget).
            KmtrError: the runner was started before.
        """
        if self._started:
            raise KmtrError(
                f"connection {self.connection_id}: chain {self.spec.name!r} already started"
            )
        self.context.backend = resolve_backend(self.spec.backend)
        stages: list[_Stage] = []
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
            stages.append(_Stage(gspec, gadget))
        groups: list[list[_Stage]] = []
        for st in stages:
            if not groups or st.spec.new_thread:
                groups.append([])
            groups[-1].append(st)
        for number, group in enumerate(groups):
            policy = self.spec.full_queue_policy if number == 0 else "block"
            q = BoundedQueue(
                f"queue {number} (before gadget {group[0].spec.id!r})", self.spec.queue_size, policy
            )
            inline = number == 0 and self.spec.inline
            self._workers.append(_Worker(self, number, group, q, inline))
        for a, b in zip(self._workers, self._workers[1:], strict=False):
            a.next = b
        if self._trace_path is not None:
            self._trace = TraceWriter(self._trace_path, self.connection_id)
        self._started = True
        for w in self._workers:
            if not w.inline:
                w.thread.start()

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
            KmtrError: the runner is not started, already closed or aborted.
        """
        if not self._started:
            raise KmtrError(f"connection {self.connection_id}: submit() before start()")
        if self._aborted:
            raise KmtrError(
                f"connection {self.connection_id}: chain {self.spec.name!r} was aborted"
            )
        if self._closing:
            raise KmtrError(f"connection {self.connection_id}: message after end of stream")
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
        now = time.perf_counter_ns()
        first = self._workers[0]
        if first.inline:
            self._next_index = index + 1
            self._submitted += 1
            self._submit_inline(first, index, now, msg)
            return index
        first.inq.put((index, now, msg, now))
        self._next_index = index + 1
        self._submitted += 1
        return index

    def _submit_inline(self, first: _Worker, index: int, now: int, msg: Any) -> None:
        with self._inline_lock:
            if self._aborted or self._crashed:
                raise KmtrError(
                    f"connection {self.connection_id}: chain {self.spec.name!r} was "
                    + ("aborted" if self._aborted else "stopped by a crashed worker")
                )
            try:
                first.run_inline(index, now, msg)
            except QueueClosedError:
                pass  # aborted meanwhile: a later worker's queue was closed
            except Exception as exc:
                first.crashed()
                raise KmtrError(
                    f"connection {self.connection_id}: chain {self.spec.name!r} failed in "
                    f"message #{index}: {type(exc).__name__}: {exc}"
                ) from exc

    def _begin_close(self) -> None:
        with self._close_lock:
            if self._closing or not self._started:
                return
            self._closing = True
        first = self._workers[0]
        if not first.inline:
            first.inq.put_control(_END)
            return
        with self._inline_lock:  # the flush runs here, in the closing thread
            if self._aborted or self._crashed:
                return
            try:
                first._flush()
            except QueueClosedError:
                return
            except Exception:
                first.crashed()
                return
            if first.next is not None:
                first.next.inq.put_control(_END)
            else:
                self._finished.set()

    def close(self, timeout: float | None = None) -> bool:
        """End of stream: flush every gadget once, in chain order, and wait for all output.

        Idempotent. Returns True when everything was emitted, False on timeout
        (or when the chain was aborted or a worker crashed).
        """
        if not self._started:
            self._closing = True
            return True
        self._begin_close()
        done = self._finished.wait(timeout)
        if done and not self._aborted:
            for w in self._workers:
                if not w.inline:
                    w.thread.join(timeout)
            if self._trace is not None:
                self._trace.close()
        return done and not self._aborted and not self._crashed

    def abort(self, reason: str, timeout: float = 1.0) -> None:
        """Client vanished: stop promptly, flush nothing, log what was lost.

        Logs at ERROR the connection, every message index still in flight and
        every gadget holding state. Idempotent.
        """
        if self._aborted:
            return
        in_flight = self._describe_in_flight()
        holding = self._describe_state()
        self._aborted = True
        log.error(
            "connection %s: chain %r aborted (%s); %s; gadgets holding state: %s",
            self.connection_id,
            self.spec.name,
            reason,
            in_flight,
            holding or "none",
        )
        if not self._started:
            return
        for w in self._workers:
            w.inq.close()
            w.inq.put_control(_ABORT)
        deadline = time.monotonic() + timeout
        first = self._workers[0]
        if first.inline:
            # Wait for a message in progress in the submitting thread, then stop the stages.
            if self._inline_lock.acquire(timeout=timeout):
                try:
                    first._abort_stages()
                finally:
                    self._inline_lock.release()
            else:
                log.error(
                    "connection %s: inline chain still busy in message #%s after abort",
                    self.connection_id,
                    first.current_index,
                )
        for w in self._workers:
            if w.inline:
                continue
            w.thread.join(max(0.0, deadline - time.monotonic()))
            if w.thread.is_alive():
                log.error(
                    "connection %s: worker %d still busy in message #%s after abort",
                    self.connection_id,
                    w.number,
                    w.current_index,
                )
        self._finished.set()
        if self._trace is not None:
            self._trace.close()

    # -- internals ----------------------------------------------------
    def _in_flight_indices(self) -> list[int]:
        """Indices of messages queued or in a worker (snapshots; the workers keep running)."""
        found: set[int] = set()
        for w in self._workers:
            if w.current_index is not None:
                found.add(w.current_index)
            pending = list(w.batch)[w.pos + 1 :] + list(w.inq._items)
            found.update(item[0] for item in pending if isinstance(item, tuple))
        return sorted(i for i in found if i is not None)

    def _describe_in_flight(self) -> str:
        indices = self._in_flight_indices()
        if not indices:
            text = "no messages in flight"
        else:
            noun = "message" if len(indices) == 1 else "messages"
            text = f"{len(indices)} {noun} in flight ({_ranges(indices)})"
        busy = [
            f"worker {w.number} in #{w.current_index}"
            for w in self._workers
            if w.current_index is not None
        ]
        depths = [f"{w.inq.name}: {len(w.inq)} queued" for w in self._workers]
        return "; ".join([text, *busy, *depths])

    def _describe_state(self) -> str:
        parts = []
        for w in self._workers:
            for st in w.stages:
                try:
                    state = st.gadget.describe_state()
                except Exception as exc:
                    state = f"state unknown ({type(exc).__name__}: {exc})"
                if state:
                    parts.append(f"{st.spec.id!r}: {state}")
        return ", ".join(parts)

    def _parse_header(self, msg: XmlHeader, index: int | None) -> ErrorReport | None:
        try:
            self.context.header = ismrmrd.xsd.CreateFromDocument(msg.xml)
        except Exception as exc:
            with self._count_lock:
                self._errors += 1
            err = ProtocolError(f"message #{index}: ISMRMRD XML header does not parse: {exc}")
            log.error("connection %s: %s", self.connection_id, err)
            return ErrorReport(code=err.code, message=str(err), gadget=None, message_index=index)
        return None

    def _report(
        self, gadget_id: str, index: int | None, exc: BaseException, where: str
    ) -> ErrorReport:
        """Wrap a gadget failure as GadgetError, log it, build the client's ErrorReport."""
        with self._count_lock:
            self._errors += 1
        detail = f"{where} failed: {type(exc).__name__}: {exc}"
        err = GadgetError(gadget_id, index, detail)
        log.error("connection %s: %s", self.connection_id, err, exc_info=exc)
        code = exc.code if isinstance(exc, KmtrError) else err.code
        return ErrorReport(code=code, message=str(err), gadget=gadget_id, message_index=index)

    def _deliver(self, index: int | None, t_submit: int, msg: Any) -> None:
        if not isinstance(msg, WIRE_TYPES):
            self._internal_at_end += 1
            log.debug(
                "connection %s: internal %s reached the chain end",
                self.connection_id,
                _type_label(msg),
            )
            return
        t0 = time.perf_counter_ns()
        try:
            self._emit(msg)
        except Exception:
            self._emit_failures += 1
            log.exception(
                "connection %s: emit failed for %s of message #%s",
                self.connection_id,
                _type_label(msg),
                index,
            )
            return
        self._emitted += 1
        if index is not None:
            t1 = time.perf_counter_ns()
            self._e2e.add(t1 - t_submit)
            if self._trace is not None:
                self._trace.write(index, "emit", _type_label(msg), t0, t1)

    def stats(self) -> dict[str, Any]:
        """Counts and latencies so far (JSON-serialisable).

        Returns:
            ``{"chain", "connection", "backend", "submitted", "emitted",
            "internal_at_end", "errors", "emit_failures", "end_to_end",
            "stages": [{"id", "type", "worker", "count", "median_us", "p95_us",
            "max_us"}], "queues": [{"name", "capacity", "high_water", "depth",
            "wait": {...}}]}``; ``end_to_end`` is submit -> emit (including the
            client callback) per emitted message.
        """
        stages = []
        queues = []
        for w in self._workers:
            for st in w.stages:
                stages.append(
                    {
                        "id": st.spec.id,
                        "type": st.spec.type_name,
                        "worker": w.number,
                        **st.samples.summary(),
                    }
                )
            queues.append(
                {
                    "name": w.inq.name,
                    "capacity": w.inq.capacity,
                    "high_water": w.inq.high_water,
                    "depth": len(w.inq),
                    "wait": w.wait_samples.summary(),
                }
            )
        return {
            "chain": self.spec.name,
            "connection": self.connection_id,
            "backend": self.context.backend,
            "submitted": self._submitted,
            "emitted": self._emitted,
            "internal_at_end": self._internal_at_end,
            "errors": self._errors,
            "emit_failures": self._emit_failures,
            "end_to_end": self._e2e.summary(),
            "stages": stages,
            "queues": queues,
        }
