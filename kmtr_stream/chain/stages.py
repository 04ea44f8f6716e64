"""Pure stage execution: push messages through consecutive gadgets, flush them.

No threads, queues or sockets: the chain runtime's workers, the tests and the
benchmarks all run gadgets through ``StageGroup`` (bytewax's ``run_main`` is
the model). Per message and stage it takes ``time.perf_counter_ns()`` on entry
and exit, keeps the durations in ``Stage.samples``, optionally writes them to
a trace, and turns a gadget's exception into an ``ErrorReport`` that goes
downstream in place of the failed message's remaining outputs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kmtr_stream.chain.gadget import Gadget, MessageTimes
from kmtr_stream.chain.tracing import LatencySamples, TraceWriter
from kmtr_stream.errors import GadgetError, KmtrError
from kmtr_stream.logsafe import RepeatCounter
from kmtr_stream.messages import ErrorReport

log = logging.getLogger("kmtr_stream.chain")

#: Where a group's outputs go: ``sink(index, t_submit_ns, message)``.
Sink = Callable[[int | None, int, Any], None]


class Stage:
    """One gadget of a chain and its latency samples.

    Attributes:
        id: the gadget id (errors, stats, traces).
        type_name: the registered gadget type (stats).
        gadget: the gadget instance.
        handles: message classes the gadget processes (others pass it by).
        samples: ``process`` durations in ns.
        flushed: True once ``flush`` was called (it is called at most once).
    """

    __slots__ = ("flushed", "gadget", "handles", "id", "local", "samples", "type_name")

    def __init__(self, gadget: Gadget, gadget_id: str | None = None, type_name: str = "") -> None:
        self.id = gadget.id if gadget_id is None else gadget_id
        self.type_name = type_name or gadget.type_name
        self.gadget = gadget
        self.handles = tuple(gadget.handles)
        #: thread-local slot of the gadget's context that carries ``MessageTimes``.
        self.local = gadget.context._local
        self.samples = LatencySamples()
        self.flushed = False


class StageGroup:
    """Consecutive stages run one message at a time in the calling thread.

    Args:
        stages: the stages in chain order.
        sink: receives every message that leaves the last stage.
        connection_id: names the connection in logged errors.
        trace: optional trace writer (one record per stage and message).
        raise_errors: re-raise a gadget's exception instead of reporting it
            (for tests that call gadgets directly).
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        sink: Sink,
        connection_id: str = "local",
        trace: TraceWriter | None = None,
        raise_errors: bool = False,
    ) -> None:
        self.stages = list(stages)
        self.sink = sink
        self.connection_id = connection_id
        self.trace = trace
        self.raise_errors = raise_errors
        #: Gadget failures reported so far (written by the one thread running this group).
        self.errors = 0
        #: The same failure (gadget, exception type, code line) is logged a few times, then counted.
        self.repeats = RepeatCounter()

    def push(self, index: int | None, t_submit: int, msg: Any, k: int = 0) -> None:
        """Push ``msg`` through stages ``k..``, then hand what leaves to the sink."""
        stages = self.stages
        n = len(stages)
        trace = self.trace
        while k < n:
            st = stages[k]
            if not isinstance(msg, st.handles):
                k += 1
                continue
            t0 = time.perf_counter_ns()
            st.local.times = MessageTimes(index, t_submit, t0)
            outs: list[Any] = []
            try:
                # extend() keeps what was yielded before a failure; the report follows it.
                outs.extend(st.gadget.process(msg))
            except Exception as exc:
                if self.raise_errors:
                    raise
                outs.append(self.report(st.id, index, exc, "process"))
            t1 = time.perf_counter_ns()
            st.local.times = None
            st.samples.add(t1 - t0)
            if trace is not None:
                trace.write(index, st.id, type(msg).__name__, t0, t1)
            k += 1
            if len(outs) == 1:
                msg = outs[0]
                continue
            for out in outs:
                self.push(index, t_submit, out, k)
            return
        self.sink(index, t_submit, msg)

    def flush(self) -> None:
        """End of stream: flush every stage once, in order; outputs cross the later stages."""
        for k, st in enumerate(self.stages):
            if st.flushed:
                continue
            st.flushed = True
            t0 = time.perf_counter_ns()
            st.local.times = MessageTimes(None, t0, t0)
            outs: list[Any] = []
            try:
                outs.extend(st.gadget.flush())
            except Exception as exc:
                if self.raise_errors:
                    raise
                outs.append(self.report(st.id, None, exc, "flush"))
            st.local.times = None
            t1 = time.perf_counter_ns()
            if self.trace is not None:
                self.trace.write(None, st.id, "flush", t0, t1)
            for out in outs:
                self.push(None, t0, out, k + 1)
        self.log_repeats()

    def log_repeats(self) -> None:
        """Log how often each failure recurred beyond the ones logged in full."""
        for key, n in self.repeats.suppressed().items():
            gadget_id, name, where = key[0], key[1], key[2]  # type: ignore[index]
            log.error("connection %s: gadget %r: %s in %s repeated %d more times (not logged)",
                      self.connection_id, gadget_id, name, where, n)

    def abort(self) -> None:
        """The stream was aborted: call every gadget's ``on_abort`` (failures are logged)."""
        self.log_repeats()
        for st in self.stages:
            try:
                st.gadget.on_abort()
            except Exception:
                log.exception(
                    "connection %s: gadget %r failed in on_abort", self.connection_id, st.id
                )

    def report(
        self, gadget_id: str, index: int | None, exc: BaseException, where: str
    ) -> ErrorReport:
        """Wrap a gadget failure as GadgetError, log it, build the client's ErrorReport."""
        self.errors += 1
        err = GadgetError(gadget_id, index, f"{where} failed: {type(exc).__name__}: {exc}")
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        line = (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb is not None else None
        if self.repeats.should_log((gadget_id, type(exc).__name__, where, line)):
            log.error("connection %s: %s", self.connection_id, err, exc_info=exc)
        code = exc.code if isinstance(exc, KmtrError) else err.code
        return ErrorReport(code=code, message=str(err), gadget=gadget_id, message_index=index)

    def describe_state(self) -> list[str]:
        """``"'<id>': <state>"`` for every stage whose gadget holds something."""
        parts = []
        for st in self.stages:
            try:
                state = st.gadget.describe_state()
            except Exception as exc:
                state = f"state unknown ({type(exc).__name__}: {exc})"
            if state:
                parts.append(f"{st.id!r}: {state}")
        return parts


def run_gadgets(
    gadgets: Sequence[Gadget],
    messages: Iterable[Any],
    flush: bool = True,
    raise_errors: bool = False,
) -> list[Any]:
    """Feed ``messages`` through ``gadgets`` as a chain does, without threads; return the outputs.

    Args:
        gadgets: built gadgets in chain order.
        messages: incoming messages, numbered 0, 1, 2, ... as the runtime numbers them.
        flush: end the stream after the last message (each gadget's ``flush``, once).
        raise_errors: let a gadget's exception propagate instead of reporting it
            as an ``ErrorReport`` among the outputs.

    Returns:
        Every message that left the last gadget, in order.
    """
    out: list[Any] = []
    group = StageGroup(
        [Stage(g) for g in gadgets], lambda i, t, m: out.append(m), raise_errors=raise_errors
    )
    for index, msg in enumerate(messages):
        group.push(index, time.perf_counter_ns(), msg)
    if flush:
        group.flush()
    return out
