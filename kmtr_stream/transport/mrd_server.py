"""MRD/TCP server: the standard MRD byte stream, a reader and a writer thread per connection.

Clients send (optionally) CONFIG_FILE, then the XML header, data messages
and CLOSE; results come back on the same socket, ending with CLOSE, as with
Gadgetron and the python-ismrmrd-server, so existing MRD clients stream to
it unchanged. The byte stream is not self-delimiting, so every protocol error
(including an unknown message id) ends the stream after it was reported.

By default only standard MRD ids go out (results mode "standard": results
and errors as TEXT, see ``codec.standard``); ``results="msgpack"`` or a
client's ``CONFIG_FILE NAME?results=msgpack`` sends k-MTR's RESULT (1500)
and ERROR (8) instead. Text goes back in the client's own dialect: NUL-
terminated when its first text payload was (python-ismrmrd-server,
Gadgetron), without the NUL otherwise (``ismrmrd.serialization``).

Isolation: results wait in the connection's own bounded outbox (the byte and
message budget of ZeroMQ's, ``_ConnectionWriter``), so a client that reads
nothing stalls only its own stream and is dropped after
``outbox_stall_timeout_s``; chain threads never block on a socket.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from pathlib import Path

from kmtr_stream.codec.standard import RESULTS_MODES, STANDARD
from kmtr_stream.codec.stream import StreamReader, encode_stream_parts
from kmtr_stream.errors import ConfigError, KmtrError, LimitError, ProtocolError, ShutdownError
from kmtr_stream.limits import Limits, check_admission, release_memory, rss_bytes
from kmtr_stream.messages import WireMessage
from kmtr_stream.transport.bind_policy import check_mrd_bind
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.outbox import PeerOutbox
from kmtr_stream.transport.session import Observer, State, StreamSession

log = logging.getLogger("kmtr_stream.transport.mrd")


def parse_host_port(address: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"host:port"``, ``":port"`` or ``"port"`` -> ``(host, port)``; ConfigError-free."""
    host, _, port = address.rpartition(":")
    try:
        return (host or default_host).strip("[]"), int(port)
    except ValueError:
        raise KmtrError(f"not a host:port address: {address!r}") from None


class _ConnectionWriter:
    """One connection's bounded outbox and the thread that writes it to the socket.

    Chain threads put whole encoded messages and never block on the socket; the
    writer thread sends them in order (the socket's timeout is the send timeout).
    As on ZeroMQ (``transport.outbox``), an outbox above ``outbox_bytes`` or
    ``outbox_messages`` is full: the connection's reader stops reading its input
    until it has drained to half, and drops the connection when it stays full for
    ``outbox_stall_timeout_s``. Text is written in the dialect ``reader`` saw from
    the client (NUL-terminated or not).
    """

    def __init__(self, sock: socket.socket, connection_id: str, reader: StreamReader,
                 limits: Limits) -> None:
        self._sock = sock
        self._cid = connection_id
        self._reader = reader
        self._stall_s = limits.outbox_stall_timeout_s
        self.outbox = PeerOutbox(limits.outbox_bytes, limits.outbox_messages)
        self._cv = threading.Condition()
        self._ended = False
        self._sending = False  # a message is off the outbox, its sendall not yet done
        self.broken = False
        self._thread = threading.Thread(target=self._run, name=f"{connection_id}-send",
                                        daemon=True)
        self._thread.start()

    def __call__(self, msg: WireMessage) -> None:
        data = b"".join(encode_stream_parts(msg, self._reader.text_nul is True))
        with self._cv:
            self.outbox.put([data])  # dropped once the connection is broken
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not len(self.outbox) and not self._ended:
                    self._cv.wait()
                if not len(self.outbox):
                    return
                (data,) = self.outbox.pop()
                self._sending = True
                self._cv.notify_all()  # a reader waiting for the outbox to drain
            try:
                self._sock.sendall(data)
                with self._cv:
                    self._sending = False
                    self._cv.notify_all()
            except OSError as exc:
                if not self.broken:  # not the server's own drop, logged where it was made
                    log.error("connection %s: cannot send results, client gone: %s",
                              self._cid, exc)
                self.fail()
                return

    def fail(self) -> None:
        """The client is gone or dropped: discard what waits and end the connection,
        reading too, so it keeps no thread and no buffers until the idle timeout."""
        with self._cv:
            self.broken = True
            self.outbox.close()
            self._cv.notify_all()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def wait_writable(self) -> bool:
        """Block while the outbox is full; False when it stayed full past the stall timeout."""
        with self._cv:
            while self.outbox.full and not self.broken:
                left = self.outbox.full_since + self._stall_s - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.5))
            return True

    def settle(self, timeout_s: float) -> bool:
        """Wait until everything queued so far was sent or the client proved gone
        (bounded by ``timeout_s``); True when the client is gone."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while (len(self.outbox) or self._sending) and not self.broken:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(min(left, 0.5))
            return self.broken

    def finish(self, timeout_s: float) -> None:
        """Send everything queued (bounded by ``timeout_s``), then stop the writer."""
        with self._cv:
            self._ended = True
            self._cv.notify_all()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self.fail()
            self._thread.join(1.0)


class MrdServer:
    """Serve chains over MRD/TCP in background threads.

    Args:
        catalog: chains clients may select (CONFIG_FILE by name).
        address: ``"host:port"`` to listen on (port 0: any free port).
        close_timeout_s: how long a chain's end-of-stream flush may take.
        trace: ``--trace`` file stem (one file per connection) or None.
        results: default results mode, "standard" (only ids stock MRD clients
            know) or "msgpack"; a client may choose with its CONFIG_FILE.
        limits: resource limits (idle and send timeouts, message and header
            sizes, connections); default ``Limits()``.
        allow_remote: listen on a non-loopback address (refused otherwise: MRD/TCP
            has no authentication); logged as a loud warning.
        observer: sees every stream's chain outputs (``session.Observer``).

    Example::

        with MrdServer(catalog, "127.0.0.1:0") as server:
            host, port = server.address
    """

    def __init__(
        self,
        catalog: ChainCatalog,
        address: str = "127.0.0.1:9002",
        *,
        close_timeout_s: float = 60.0,
        trace: str | Path | None = None,
        results: str = STANDARD,
        limits: Limits | None = None,
        allow_remote: bool = False,
        observer: Observer | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.observer = observer
        if results not in RESULTS_MODES:
            raise ConfigError(f"results mode {results!r} is not one of {', '.join(RESULTS_MODES)}")
        self.results = results
        self.catalog = catalog
        self._bind = parse_host_port(address)
        self.close_timeout_s = close_timeout_s
        self.trace = trace
        self.allow_remote = allow_remote
        self.address: tuple[str, int] = self._bind
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._conns: dict[str, tuple[socket.socket, StreamSession]] = {}
        self._threads: list[threading.Thread] = []
        self._draining = False
        #: Connections dropped because their outbox stayed full.
        self.stalled_drops = 0
        #: The largest outbox any connection had, in bytes (the budget plus one message).
        self.outbox_peak_bytes = 0

    def start(self) -> None:
        """Listen and start accepting connections (KmtrError: refused or cannot listen)."""
        check_mrd_bind(self._bind[0], self.allow_remote)
        try:
            listener = socket.create_server(self._bind, reuse_port=False)
        except OSError as exc:
            raise KmtrError(f"MRD/TCP server cannot listen on {self._bind}: {exc}") from None
        listener.settimeout(0.2)
        self._listener = listener
        self.address = listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._accept_loop, name="mrd-accept", daemon=True)
        self._thread.start()
        log.info("MRD/TCP server listening on %s:%d", *self.address)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, abort open streams (logged) and join the threads."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            conns = list(self._conns.values())
        for sock, session in conns:
            session.abort("server stopping")
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout)
        if self._listener is not None:
            self._listener.close()

    def drain(self, timeout_s: float | None = None) -> bool:
        """Stop accepting; end every open stream (ERROR, flush, CLOSE); then stop.

        Returns True when every connection finished within the timeout
        (default ``limits.drain_timeout_s``).
        """
        timeout = self.limits.drain_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self._draining = True  # a connection registering from now on is refused
            conns = list(self._conns.values())
        for sock, session in conns:
            if session.state is State.OPEN:
                session.report(ShutdownError(
                    "server shutting down: no further messages are taken; the outputs of "
                    "everything received follow, then CLOSE"), None)
                try:
                    sock.shutdown(socket.SHUT_RD)  # the reader sees end of file: flush, CLOSE
                except OSError:
                    pass
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        if not done:
            log.error("MRD/TCP server: drain did not finish within %g s; stopping anyway", timeout)
        self.stop(timeout=1.0)
        return done

    def __enter__(self) -> MrdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if not self._stop.is_set():
                    log.exception("MRD/TCP accept failed")
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.limits.idle_timeout_s)
            cid = f"mrd-{next(self._numbers)}-{peer[0]}:{peer[1]}"
            t = threading.Thread(target=self._serve, args=(sock, cid), name=cid, daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket, cid: str) -> None:
        reader = StreamReader.from_socket(sock, self.limits)
        # A second descriptor of the same connection, so sends get their own timeout.
        out = sock.dup()
        out.settimeout(self.limits.send_timeout_s)
        sender = _ConnectionWriter(out, cid, reader, self.limits)
        session = StreamSession(
            self.catalog, cid, send=sender, trace=self.trace,
            close_timeout_s=self.close_timeout_s, background_end=False, results=self.results,
            observer=self.observer,
            limits=self.limits,
        )
        with self._lock:
            open_streams = len(self._conns)
            self._conns[cid] = (sock, session)
            draining = self._draining
        log.info("connection %s opened", cid)
        try:
            try:
                if draining:
                    raise ShutdownError("server shutting down: new streams are refused")
                check_admission(self.limits, open_streams, threading.active_count(), rss_bytes())
            except (LimitError, ShutdownError) as exc:
                session.fail(exc, None)
            while session.state is State.OPEN:
                if sender.outbox.full and not sender.wait_writable():
                    reason = sender.outbox.stall_reason(self.limits.outbox_stall_timeout_s)
                    log.error("connection %s dropped: %s", cid, reason)
                    self.stalled_drops += 1
                    sender.fail()
                    session.abort(reason)
                    break
                try:
                    msg = reader.read_message()
                except ProtocolError as exc:
                    # Unknown ids, bad lengths and truncation: the byte stream cannot be
                    # resynchronised, so report, flush what was valid, send CLOSE.
                    session.decode_failed(exc, skippable=False)
                    break
                except TimeoutError:
                    session.report(ProtocolError(
                        f"no message for {self.limits.idle_timeout_s:g} s; stream aborted "
                        "(idle_timeout_s)"), None)
                    session.abort(f"idle for {self.limits.idle_timeout_s:g} s")
                    break
                except OSError as exc:
                    session.abort(f"connection error: {exc}")
                    break
                if msg is None:
                    # Gone or finished? Whether it still takes the results sent so far
                    # tells (a vanished client resets the connection).
                    if sender.settle(self.limits.send_timeout_s):
                        session.abort("client disconnected before CLOSE")
                        break
                    # End of file between messages: as documented, it ends the stream like CLOSE.
                    log.info("connection %s: end of file without CLOSE; ending the stream", cid)
                    session.end()
                    break
                session.handle(msg)
        except Exception:
            log.exception("connection %s: server thread failed", cid)
            session.abort("server error")
        finally:
            with self._lock:
                self._conns.pop(cid, None)
                idle = not self._conns
            sender.finish(self.limits.send_timeout_s)
            self.outbox_peak_bytes = max(self.outbox_peak_bytes, sender.outbox.peak_bytes)
            _linger_close(sock)
            out.close()
            if idle:
                release_memory()  # every stream is over: memory back to the baseline
            log.info("connection %s closed", cid)


def _linger_close(sock: socket.socket, drain_s: float = 10.0, quiet_s: float = 1.0) -> None:
    """Close after the client read everything: half-close, drain its leftovers, close.

    Closing with unread input makes the kernel send RST, which can destroy the
    ERROR and CLOSE still in flight to a client that was sending meanwhile (a
    stock client refused at CONFIG_FILE still sends its whole file). The drain
    ends at the client's end of file (sent once it has read CLOSE), after
    ``quiet_s`` without input (nothing left unread, so closing sends no RST; a
    client that reads until end of file is not kept waiting), or after
    ``drain_s`` for a client that never stops sending.
    """
    deadline = time.monotonic() + drain_s
    try:
        sock.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(min(left, quiet_s))
            if not sock.recv(1 << 16):
                break
    except OSError:  # TimeoutError included: the client went quiet
        pass
    finally:
        sock.close()
