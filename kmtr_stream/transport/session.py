"""One client stream's protocol state, shared by the ZeroMQ and MRD/TCP servers.

A stream is: optional CONFIG_FILE (selects a chain from the server's
allow-list), the ISMRMRD XML header, data messages, CLOSE. The session parses
the header once, starts a ``ChainRunner`` with it (every gadget is built with
the header and its encoding geometry), feeds it the header message and the
data, and after the chain's end-of-stream flush sends every output and then
CLOSE back. Data before the header, or a header that does not parse, gets one
ERROR and ends the stream.

Error policy (documented in ``kmtr_stream.transport``): a protocol error is
reported to the client as an ERROR message and logged; then the stream ends
gracefully: everything valid received before the error is flushed through the
chain and returned, followed by CLOSE. Later messages of that stream are
dropped until the client's own CLOSE. Only messages that can be skipped
without misreading anything (an unknown message id on ZeroMQ, where frames
are self-delimiting) are reported and skipped without ending the stream.

Results mode: "msgpack" sends RESULT (1500) and ERROR (8) as they are;
"standard" sends them as TEXT (``codec.standard``), so only ids that stock
MRD clients know go out. The server sets the default, a client's
CONFIG_FILE may override it (``NAME?results=MODE``).

Client data messages (acquisition, image, waveform, text) follow the
chain's ``[chain.inputs]`` policy per kind: "pass" (fed to the chain),
"warn" (dropped; the first of each kind gets a WARNING TEXT, the count is
logged at the end) or "error" (ERROR naming the chain and the kind, then
the stream ends).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import ismrmrd

from kmtr_stream.chain.gadget import StreamHeader
from kmtr_stream.chain.runtime import ChainRunner
from kmtr_stream.codec.standard import MSGPACK, RESULTS_MODES, STANDARD, log_line, to_standard
from kmtr_stream.errors import ConfigError, KmtrError, LimitError, ProtocolError
from kmtr_stream.limits import Limits, check_header
from kmtr_stream.logsafe import RepeatCounter, safe_text
from kmtr_stream.messages import (
    Close,
    ConfigFile,
    ConfigText,
    ErrorReport,
    Text,
    WireMessage,
    XmlHeader,
)
from kmtr_stream.transport.catalog import ChainCatalog, message_policy

log = logging.getLogger("kmtr_stream.transport")

_DATA_TYPES = (ismrmrd.Acquisition, ismrmrd.Image, ismrmrd.Waveform)
#: Sees every chain output a stream sends (connection id, message), e.g. ``serve --live``.
Observer = Callable[[str, Any], None]
_ACQUISITION = ismrmrd.Acquisition


class State(Enum):
    """Where a stream stands."""

    OPEN = "open"  # accepting messages
    ENDING = "ending"  # chain flushing; CLOSE goes out when it is done
    ENDED = "ended"  # CLOSE sent (or the stream was aborted)


def trace_path_for(trace: str | Path | None, connection_id: str) -> Path | None:
    """Per-connection trace file: ``run.jsonl`` -> ``run.<connection>.jsonl``."""
    if trace is None:
        return None
    path = Path(trace)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in connection_id)
    return path.with_name(f"{path.stem}.{safe}{path.suffix or '.jsonl'}")


class StreamSession:
    """Protocol state machine of one client stream.

    Args:
        catalog: chains the client may select.
        connection_id: names the connection in logs and errors.
        send: thread-safe callable putting one wire message on the way to
            this client (called from the caller's thread and chain threads).
        on_ended: called once, from any thread, after CLOSE was sent or the
            stream was aborted.
        trace: ``--trace`` file stem (one file per connection) or None.
        close_timeout_s: how long the end-of-stream flush may take.
        background_end: end streams in a helper thread (the ZeroMQ I/O thread
            must never block); False ends them in the caller's thread.
        results: default results mode, "msgpack" or "standard" (see module doc).
        limits: resource limits (header sizes, slice buffers, log text length).
        observer: called with (connection id, output) for every chain output, in
            the chain's thread, before it is sent; it must be quick and thread-safe.
    """

    def __init__(
        self,
        catalog: ChainCatalog,
        connection_id: str,
        send: Callable[[WireMessage], None],
        on_ended: Callable[[], None] = lambda: None,
        trace: str | Path | None = None,
        close_timeout_s: float = 60.0,
        background_end: bool = False,
        results: str = MSGPACK,
        limits: Limits | None = None,
        observer: Observer | None = None,
    ) -> None:
        if results not in RESULTS_MODES:
            raise ConfigError(f"results mode {results!r} is not one of {', '.join(RESULTS_MODES)}")
        self.catalog = catalog
        self.limits = limits or Limits()
        self.connection_id = connection_id
        self._send = send
        self._observer = observer
        self._on_ended = on_ended
        self._trace = trace
        self.close_timeout_s = close_timeout_s
        self._background_end = background_end
        self.state = State.OPEN
        self.client_closed = False
        #: True once the stream was aborted (client gone, idle timeout, server stop).
        self.aborted = False
        self.runner: ChainRunner | None = None
        self.chain_name: str | None = None
        self.received = 0
        self.dropped = 0
        #: "msgpack" or "standard"; fixed once the XML header has arrived.
        self.results = results
        self._standard = results == STANDARD
        #: Per client message class: "pass", "warn" or "error" (set with the chain).
        self._policy: dict[type, str] = {}
        self._acq_direct = True
        #: Client messages dropped under a "warn" policy, by class name.
        self.unconsumed: dict[str, int] = {}
        self._end_lock = threading.Lock()
        self._end_thread: threading.Thread | None = None
        #: Errors after the stream began ending are logged a few times, then counted.
        self._late_errors = RepeatCounter()

    # -- incoming -------------------------------------------------------
    def would_block(self) -> bool:
        """``handle`` would now wait for room in the chain's first queue."""
        runner = self.runner
        return runner is not None and self.state is State.OPEN and not runner.has_room()

    def handle(self, msg: WireMessage) -> None:
        """Process one decoded incoming message (may block on chain backpressure)."""
        index = self.received
        self.received += 1
        runner = self.runner
        if (type(msg) is _ACQUISITION and runner is not None and self.state is State.OPEN
                and self._acq_direct):
            # The hot path (one readout mid-stream): what _dispatch would decide anyway.
            try:
                runner.submit(msg, index)
            except KmtrError as exc:
                self.fail(exc, index)
            return
        if isinstance(msg, Close):
            self.client_closed = True
            if self.state is State.OPEN:
                self.end()
            return
        if self.state is not State.OPEN:
            self._drop(msg, index)
            return
        try:
            self._dispatch(msg, index)
        except KmtrError as exc:
            self.fail(exc, index)

    def _dispatch(self, msg: WireMessage, index: int) -> None:
        if isinstance(msg, ConfigFile):
            if self.runner is not None:
                raise ProtocolError(
                    f"message #{index}: CONFIG_FILE {msg.name!r} after the XML header"
                )
            request = self.catalog.parse_request(msg.name)  # ConfigError names the allow-list
            self.chain_name = request.name
            if request.results is not None:
                self.results = request.results
                self._standard = request.results == STANDARD
            log.info("connection %s: chain %r selected (results %s)", self.connection_id,
                     request.name, self.results)
            return
        if isinstance(msg, ConfigText):
            raise ConfigError(
                f"message #{index}: CONFIG_TEXT is not accepted (chains are never loaded from "
                f"the network); send CONFIG_FILE with one of: {', '.join(self.catalog.names())}"
            )
        if isinstance(msg, (XmlHeader, Text, ConfigText)):
            self._check_text_size(msg, index)
        if isinstance(msg, XmlHeader):
            if self.runner is not None:
                raise ProtocolError(f"message #{index}: a second XML header in one stream")
            try:
                stream = StreamHeader.parse(msg.xml)
            except ProtocolError as exc:
                raise ProtocolError(f"message #{index}: {exc}") from exc
            asi = getattr(stream.header, "acquisitionSystemInformation", None)
            channels = getattr(asi, "receiverChannels", None) if asi is not None else None
            # Before any chain (and its buffers) exists for this header.
            check_header(self.limits, stream.geometry,
                         int(channels) if channels is not None else None)
            self._start_runner(stream)
        elif self.runner is None:
            if isinstance(msg, Text):
                log.info("connection %s: text before header: %s", self.connection_id,
                         safe_text(msg.text, self.limits.log_text_chars))
                return
            raise ProtocolError(
                f"message #{index}: {type(msg).__name__} before the ISMRMRD XML header"
            )
        elif not isinstance(msg, (*_DATA_TYPES, Text)):
            raise ProtocolError(
                f"message #{index}: {type(msg).__name__} is not accepted from clients"
            )
        elif not self._admit(msg, index):
            return
        assert self.runner is not None
        self.runner.submit(msg, index)

    def _check_text_size(self, msg: XmlHeader | Text | ConfigText, index: int) -> None:
        text = msg.xml if isinstance(msg, XmlHeader) else msg.text
        # UTF-8 takes at least one byte per character: the length bounds the bytes from below.
        if len(text) > self.limits.max_header_bytes:
            raise LimitError("max_header_bytes", self.limits.max_header_bytes,
                             f"message #{index}: {type(msg).__name__} of {len(text)} characters")

    def _admit(self, msg: WireMessage, index: int) -> bool:
        """Apply the chain's ``[chain.inputs]`` policy; True to feed ``msg`` to the chain."""
        action = self._policy.get(type(msg), "pass")
        if action == "pass":
            return True
        kind = "TEXT" if isinstance(msg, Text) else type(msg).__name__.upper()
        chain = self.runner.spec.name if self.runner is not None else "?"
        if action == "error":
            raise ProtocolError(
                f"message #{index}: chain {chain!r} does not take {kind} messages "
                f"([chain.inputs] {kind.lower()} = \"error\")"
            )
        name = type(msg).__name__
        self.unconsumed[name] = self.unconsumed.get(name, 0) + 1
        if self.unconsumed[name] == 1:
            text = (f"chain {chain!r} does not use {kind} messages: message #{index} and any "
                    "later ones of that kind are dropped")
            log.warning("connection %s: %s", self.connection_id, text)
            self._out(log_line("WARNING", text))
        return False

    def _start_runner(self, stream: StreamHeader) -> None:
        spec = self.catalog.select(self.chain_name)
        runner = ChainRunner(
            spec,
            emit=self._send_output,
            header=stream,
            connection_id=self.connection_id,
            trace_path=trace_path_for(self._trace, self.connection_id),
            limits=self.limits,
        )
        self._policy = message_policy(spec)
        self._acq_direct = self._policy[_ACQUISITION] == "pass"
        runner.start()
        self.runner = runner
        log.info("connection %s: stream started on chain %r", self.connection_id, spec.name)

    def _out(self, msg: Any) -> None:
        """Send one message to the client in the stream's results mode."""
        self._send(to_standard(msg) if self._standard else msg)

    def _send_output(self, msg: Any) -> None:
        if self._observer is not None:
            try:
                self._observer(self.connection_id, msg)
            except Exception:  # a display must never cost the client its results
                log.exception("connection %s: output observer failed; detached",
                              self.connection_id)
                self._observer = None
        try:
            self._out(msg)
        except ProtocolError as exc:
            # An output that cannot be encoded must not vanish silently.
            log.error("connection %s: cannot send %s: %s", self.connection_id,
                      type(msg).__name__, exc)
            self._out(ErrorReport(code=exc.code, message=f"cannot encode output: {exc}"))

    def _drop(self, msg: WireMessage, index: int) -> None:
        self.dropped += 1
        if self.dropped == 1:
            log.warning(
                "connection %s: stream already ended; dropping message #%d (%s) and later ones "
                "until the client's CLOSE",
                self.connection_id, index, type(msg).__name__,
            )

    # -- errors -----------------------------------------------------------
    def report(self, exc: KmtrError, index: int | None, fatal: bool = True) -> None:
        """Send ``exc`` to the client as ERROR and log it (does not end the stream)."""
        what = "ending the stream" if fatal else "message skipped"
        log.error("connection %s: %s (%s)", self.connection_id, exc, what)
        self._out(ErrorReport(code=exc.code, message=str(exc), message_index=index,
                              context={"connection": self.connection_id}))

    def fail(self, exc: KmtrError, index: int | None) -> None:
        """Report ``exc``, then end the stream gracefully (flush valid work, CLOSE)."""
        if self.state is not State.OPEN:
            n = self._late_errors.note(type(exc).__name__)
            if n <= self._late_errors.first:
                log.error("connection %s: %s (stream already ending)", self.connection_id, exc)
            elif n in (10, 100, 1000) or n % 10_000 == 0:
                log.error("connection %s: %d errors after the stream began ending (latest: %s)",
                          self.connection_id, n, exc)
            return
        self.report(exc, index)
        self.end()

    def skip(self, exc: KmtrError, index: int | None) -> None:
        """Report a message that was skipped safely; the stream carries on."""
        self.report(exc, index, fatal=False)

    def decode_failed(self, exc: ProtocolError, skippable: bool) -> None:
        """An incoming message could not be decoded: count it, then skip or fail."""
        index = self.received
        self.received += 1
        if self.state is not State.OPEN:
            self._drop(Text(""), index)
        elif skippable:
            self.skip(exc, index)
        else:
            self.fail(exc, index)

    # -- end of stream ----------------------------------------------------
    def end(self) -> None:
        """End the stream: flush the chain, send its outputs, then CLOSE."""
        with self._end_lock:
            if self.state is not State.OPEN:
                return
            self.state = State.ENDING
        if self._background_end:
            self._end_thread = threading.Thread(
                target=self._finish, name=f"end-{self.connection_id}", daemon=True
            )
            self._end_thread.start()
        else:
            self._finish()

    def _finish(self) -> None:
        try:
            finished = self.runner is None or self.runner.close(timeout=self.close_timeout_s)
            if self.state is State.ENDED:  # aborted meanwhile: the client is gone
                return
            if not finished:
                err = KmtrError(
                    f"chain did not finish within {self.close_timeout_s:g} s; "
                    "outputs may be missing"
                )
                self.report(err, None)
            self._out(Close())
        except Exception:
            log.exception("connection %s: ending the stream failed", self.connection_id)
        finally:
            self.state = State.ENDED
            if self.unconsumed:
                log.warning("connection %s: dropped unconsumed client messages: %s",
                            self.connection_id,
                            ", ".join(f"{n} {k}" for k, n in sorted(self.unconsumed.items())))
            log.info("connection %s: stream ended after %d messages", self.connection_id,
                     self.received)
            self._on_ended()

    def abort(self, reason: str) -> None:
        """The client is gone: stop the chain without flushing; log what was lost."""
        with self._end_lock:
            if self.state is State.ENDED:
                return
            was_open = self.state is State.OPEN
            self.state = State.ENDED
            self.aborted = True
        if was_open:
            log.error("connection %s: client lost mid-stream after %d messages: %s",
                      self.connection_id, self.received, reason)
        if self.runner is not None:
            self.runner.abort(reason)
        if was_open:
            self._on_ended()

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background end-of-stream to finish."""
        if self._end_thread is not None:
            self._end_thread.join(timeout)
