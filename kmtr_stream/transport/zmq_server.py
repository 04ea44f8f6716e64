"""ZeroMQ server: one ROUTER socket, many scanners (DEALER clients) at once.

Each connection identity gets its own ``StreamSession`` (and ChainRunner);
its results go back to the same identity. Only the I/O thread touches the
ROUTER socket: chain threads encode their outputs into frames and append
them to an outbox deque, then wake the I/O thread through a socket pair
that the zmq poller watches (one wake-up byte per burst, not per message).
An inline chain (``inline = true``) runs in the I/O thread itself: its
outputs go to the outbox without a wake-up and leave after each receive batch.
Outputs for one connection that are already waiting in the outbox leave as
one packed message (``codec.zmq_packed``, up to ``pack_max``); a lone output
leaves as itself, so packing never delays anything. Packed messages from
clients are unpacked and each inner message is handled in order.

Vanished clients are detected three ways: ZMTP heartbeats make libzmq drop
dead TCP peers; a socket monitor reports each disconnect with the file
descriptor that ``zmq.SRCFD`` tied to the identity; and an idle timeout
catches a client that stays connected but stops sending mid-stream. Its chain
is aborted with a logged error; other connections carry on.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from kmtr_stream.codec.parts import MAX_MESSAGE_BYTES
from kmtr_stream.codec.zmq_frames import encode_frames
from kmtr_stream.codec.zmq_packed import decode_message, pack_frames
from kmtr_stream.errors import KmtrError, ProtocolError, UnknownMessageError
from kmtr_stream.messages import WireMessage
from kmtr_stream.transport import curve_auth
from kmtr_stream.transport.bind_policy import check_zmq_bind
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.fd_owners import FdOwners
from kmtr_stream.transport.session import State, StreamSession
from kmtr_stream.transport.zmq_io import NOBLOCK, recv_frames, send_frames

log = logging.getLogger("kmtr_stream.transport.zmq")

_ENDED = object()  # outbox marker: a session's stream is over


class _Packed(list[Any]):
    """Frames of a packed message, built here to be sent: sent with copy=True."""
#: Messages read per poll round before outputs and monitor events get a turn.
_RECV_BATCH = 512
#: Identities of vanished connections remembered, to drop their stragglers.
_GONE_MEMORY = 4096


class ZmqServer:
    """Serve chains over ZeroMQ (ROUTER) in a background I/O thread.

    Args:
        catalog: chains clients may select (CONFIG_FILE by name).
        endpoint: where to bind, e.g. ``"tcp://127.0.0.1:9000"`` (port 0: any free port).
        idle_timeout_s: abort an open stream after this long without a message.
        heartbeat_ivl_ms: ZMTP heartbeat interval (0 disables heartbeats).
        heartbeat_timeout_ms: drop a peer that answers no heartbeat for this long.
        close_timeout_s: how long a chain's end-of-stream flush may take.
        trace: ``--trace`` file stem (one file per connection) or None.
        pack_max: outputs for one connection that are already waiting go out
            packed, up to this many per ZeroMQ message (1: never pack).
        pack_bytes: stop adding to a packed message once it holds this many bytes.
        max_frame_bytes: libzmq drops a connection that sends a larger frame
            before buffering it (logged as a lost client; others carry on).
        curve: CurveZMQ keys (``curve_auth.ServerCurve``): only allow-listed clients get
            in, refusals are logged; None: no authentication (loopback is advised).

    Example::

        server = ZmqServer(ChainCatalog.from_paths(["configs/passthrough.toml"]),
                           "tcp://127.0.0.1:0")
        server.start()
        print(server.endpoint)   # tcp://127.0.0.1:43817
        ...
        server.stop()
    """

    def __init__(
        self,
        catalog: ChainCatalog,
        endpoint: str = "tcp://127.0.0.1:9000",
        *,
        idle_timeout_s: float = 120.0,
        heartbeat_ivl_ms: int = 1000,
        heartbeat_timeout_ms: int = 5000,
        close_timeout_s: float = 60.0,
        trace: str | Path | None = None,
        pack_max: int = 16,
        pack_bytes: int = 1 << 20,
        max_frame_bytes: int = MAX_MESSAGE_BYTES,
        curve: curve_auth.ServerCurve | None = None,
    ) -> None:
        self.catalog = catalog
        self._bind = endpoint
        self.idle_timeout_s = idle_timeout_s
        self.heartbeat_ivl_ms = heartbeat_ivl_ms
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self.close_timeout_s = close_timeout_s
        self.trace = trace
        self.pack_max = pack_max
        self.max_frame_bytes = max_frame_bytes
        self.pack_bytes = pack_bytes
        self.curve = curve
        self.endpoint = ""
        self.sessions: dict[bytes, StreamSession] = {}
        self._outbox: collections.deque[tuple[bytes, Any]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_pending = False
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._io_ident: int | None = None
        self._seen: dict[bytes, float] = {}
        self._fds = FdOwners()
        self._gone: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._next_number = 0

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        """Bind and start the I/O thread; raises KmtrError if binding fails."""
        check_zmq_bind(self._bind, authenticated=self.curve is not None)
        self._thread = threading.Thread(target=self._main, name="zmq-server", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            raise KmtrError(f"ZeroMQ server cannot bind {self._bind}: {self._error}")
        log.info("ZeroMQ server listening on %s", self.endpoint)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the I/O thread; open streams are aborted (logged)."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> ZmqServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- outbox (any thread) ------------------------------------------------
    def _wake(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._wake_w.send(b"\0")
            except (BlockingIOError, OSError):
                pass

    def _post(self, identity: bytes, item: Any) -> None:
        self._outbox.append((identity, item))
        if threading.get_ident() != self._io_ident:  # the I/O thread sends it on its own
            self._wake()

    def _sender(self, identity: bytes) -> Any:
        def send(msg: WireMessage) -> None:
            frames = encode_frames(msg)  # encode in the producing thread, off the I/O thread
            self._post(identity, frames)

        return send

    # -- I/O thread -----------------------------------------------------------
    def _main(self) -> None:
        self._io_ident = threading.get_ident()
        # A CURVE server has a context of its own: its ZAP handler is bound per context.
        ctx: zmq.Context[Any] = zmq.Context() if self.curve else zmq.Context.instance()
        router = ctx.socket(zmq.ROUTER)
        monitor: zmq.Socket | None = None
        zap: curve_auth.ZapHandler | None = None
        try:
            if self.curve is not None:
                zap = self.curve.secure(router, ctx)
            router.linger = 0
            router.setsockopt(zmq.ROUTER_MANDATORY, 1)
            router.setsockopt(zmq.MAXMSGSIZE, self.max_frame_bytes)
            router.sndhwm = router.rcvhwm = 100_000
            if self.heartbeat_ivl_ms > 0:
                router.setsockopt(zmq.HEARTBEAT_IVL, self.heartbeat_ivl_ms)
                router.setsockopt(zmq.HEARTBEAT_TIMEOUT, self.heartbeat_timeout_ms)
                router.setsockopt(zmq.HEARTBEAT_TTL, self.heartbeat_timeout_ms)
            events = zmq.EVENT_DISCONNECTED | (curve_auth.HANDSHAKE_EVENTS if zap else 0)
            monitor = router.get_monitor_socket(events)
            router.bind(self._bind)
            self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        except Exception as exc:
            self._error = exc
            router.close(0)
            if monitor is not None:
                monitor.close(0)
            self._end_auth(zap, ctx)
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop(router, monitor)
        except Exception:
            log.exception("ZeroMQ server I/O thread crashed")
        finally:
            for identity in list(self.sessions):
                self._forget(identity, "server stopping")
            router.disable_monitor()
            monitor.close(0)
            router.close(0)
            self._end_auth(zap, ctx)

    def _end_auth(self, zap: curve_auth.ZapHandler | None, ctx: zmq.Context[Any]) -> None:
        if zap is not None:
            zap.stop()
            ctx.term()

    def _loop(self, router: zmq.Socket, monitor: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        poller.register(self._wake_r.fileno(), zmq.POLLIN)
        backlog: collections.deque[tuple[bytes, Any]] = collections.deque()
        next_idle_check = time.monotonic() + 1.0
        while not self._stop.is_set():
            poller.poll(5 if backlog else 250)
            self._wake_pending = False
            try:
                while self._wake_r.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass
            drained = self._read_router(router)
            self._send_outbox(router, backlog)
            if drained:
                self._read_monitor(monitor)
            now = time.monotonic()
            if now >= next_idle_check:
                self._check_idle(now)
                next_idle_check = now + 1.0

    def _read_router(self, router: zmq.Socket) -> bool:
        """Handle about _RECV_BATCH messages (packed ones count each inner message).

        Returns True when the socket had no more.
        """
        budget = _RECV_BATCH
        while budget > 0:
            try:
                frames = recv_frames(router, NOBLOCK)
            except zmq.Again:
                return True
            budget -= self._on_message(frames)
        return False

    def _on_message(self, frames: list[zmq.Frame]) -> int:
        """Handle one ZeroMQ message; returns how many MRD messages it carried."""
        ident_frame = frames[0]
        identity = ident_frame.bytes
        if identity in self._gone:
            return 1
        session = self.sessions.get(identity)
        if session is None:
            session = self._open(identity, ident_frame)
        self._seen[identity] = time.monotonic()
        messages, fault = decode_message(frames[1:])
        for msg in messages:
            if isinstance(msg, ProtocolError):
                # An unknown id in a sound frame is safe to skip on ZeroMQ: nothing is misread.
                session.decode_failed(msg, skippable=isinstance(msg, UnknownMessageError))
            else:
                session.handle(msg)
        if fault is not None:
            session.decode_failed(fault, skippable=False)
        if session.state is State.ENDED and session.client_closed:
            self._forget(identity, None)
        return max(1, len(messages))

    def _open(self, identity: bytes, ident_frame: zmq.Frame) -> StreamSession:
        self._next_number += 1
        cid = f"zmq-{self._next_number}-{identity.hex()}"
        session = StreamSession(
            self.catalog,
            cid,
            send=self._sender(identity),
            on_ended=lambda: self._post(identity, _ENDED),
            trace=self.trace,
            close_timeout_s=self.close_timeout_s,
            background_end=True,
        )
        self.sessions[identity] = session
        try:
            fd = int(ident_frame.get(zmq.SRCFD))
        except (zmq.ZMQError, ValueError, TypeError):
            fd = -1
        if fd >= 0:
            old = self._fds.opened(identity, fd)
            if old is not None:
                self._forget(old, "connection closed (its socket was reused)")
        log.info("connection %s opened", cid)
        return session

    def _read_monitor(self, monitor: zmq.Socket) -> None:
        while True:
            try:
                event = parse_monitor_message(monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return
            if event["event"] & curve_auth.HANDSHAKE_EVENTS:
                curve_auth.log_handshake_failure(event)
            if event["event"] != zmq.EVENT_DISCONNECTED:
                continue
            identity = self._fds.disconnected(int(event["value"]))
            if identity is not None:
                self._forget(identity, "client disconnected")

    def _forget(self, identity: bytes, reason: str | None) -> None:
        """Drop a connection; with a reason, abort its chain if the stream was not over."""
        session = self.sessions.pop(identity, None)
        self._seen.pop(identity, None)
        if reason is not None:
            self._gone[identity] = None
            while len(self._gone) > _GONE_MEMORY:
                self._gone.popitem(last=False)
        if session is not None and reason is not None and session.state is not State.ENDED:
            # runner.abort joins threads: keep that off the I/O thread.
            threading.Thread(
                target=session.abort, args=(reason,), name=f"abort-{session.connection_id}",
                daemon=True,
            ).start()

    def _check_idle(self, now: float) -> None:
        for identity, seen in list(self._seen.items()):
            session = self.sessions.get(identity)
            if session is None or session.state is not State.OPEN:
                continue
            if now - seen > self.idle_timeout_s:
                err = ProtocolError(
                    f"no message for {self.idle_timeout_s:g} s mid-stream; stream aborted"
                )
                session.report(err, None)
                session.abort(str(err))

    def _send_outbox(
        self, router: zmq.Socket, backlog: collections.deque[tuple[bytes, Any]]
    ) -> None:
        outbox = self._outbox
        while True:
            if backlog:
                identity, item = backlog.popleft()
            elif outbox:
                identity, item = outbox.popleft()
                if self.pack_max > 1 and outbox and item is not _ENDED:
                    item = self._gather(identity, item)
            else:
                return
            if item is _ENDED:
                session = self.sessions.get(identity)
                if session is not None and (session.client_closed or session.aborted):
                    self._forget(identity, None)
                continue
            if identity in self._gone:
                continue
            try:
                send_frames(router, [identity, *item], NOBLOCK, copy=type(item) is _Packed)
            except zmq.Again:
                # The peer's queue is full: keep the order, retry on the next round.
                backlog.appendleft((identity, item))
                return
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH:
                    raise
                self._forget(identity, "client unreachable while sending results")

    def _gather(self, identity: bytes, frames: list[Any]) -> list[Any]:
        """``frames`` plus the same connection's next waiting outputs, packed into one message.

        Only outputs already in the outbox are taken, so packing adds no wait.
        The byte cap counts each message's last frame (its data, the bulk of it).
        """
        outbox, group = self._outbox, [frames]
        size, cap, most = len(frames[-1]), self.pack_bytes, self.pack_max
        while outbox and size < cap and len(group) < most:
            nxt_identity, nxt = outbox[0]
            if nxt_identity != identity or nxt is _ENDED:
                break
            group.append(nxt)
            size += len(nxt[-1])
            outbox.popleft()
        return _Packed(pack_frames(group)) if len(group) > 1 else frames
