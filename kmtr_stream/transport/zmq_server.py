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

Isolation (``transport.outbox``): every connection has its own bounded
outbox. The I/O thread sends each connection's replies until its peer's
queue is full, then turns to the next connection, so a client that reads
nothing never delays another. While a connection's outbox is full its input
is held instead of fed to its chain; a connection whose outbox stays full for
``outbox_stall_timeout_s`` is dropped with a logged reason. Input is also held
while its chain's first queue is full: the I/O thread never waits on one chain,
so a slow chain delays only its own connection (waiting there would stop reading
every peer, and libzmq's heartbeats would then drop them all). Held input counts
against ``outbox_bytes``; past it the connection is dropped with the reason.

A routing id names a connection only while its stream lasts: after a stream
ended, or its connection was lost, a message that starts a stream
(CONFIG_FILE or the XML header) under the same id opens a fresh session. A
new connection under an id that is still connected takes it over
(``ROUTER_HANDOVER``; without it libzmq ignores the newcomer silently). Each
session remembers the connection that opened it (``transport.peer``: its file
descriptor and, under CurveZMQ, its key): a message under its id from another
connection aborts it and drops its undelivered results, so that one client's
results never reach another, and the takeover is logged.

``drain`` (SIGTERM in ``kmtr-stream serve``) refuses new streams (ERROR, CLOSE),
sends every open stream an ERROR, flushes what it received through its
chain, returns the outputs and CLOSE, and gives up after a bounded time.
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

from kmtr_stream.codec.zmq_frames import encode_frames
from kmtr_stream.codec.zmq_packed import decode_message, pack_frames
from kmtr_stream.errors import (
    KmtrError,
    LimitError,
    ProtocolError,
    ShutdownError,
    UnknownMessageError,
)
from kmtr_stream.limits import Limits, check_admission, release_memory, rss_bytes
from kmtr_stream.logsafe import RepeatCounter
from kmtr_stream.messages import ConfigFile, WireMessage, XmlHeader
from kmtr_stream.transport import curve_auth
from kmtr_stream.transport.bind_policy import check_zmq_bind
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.fd_owners import FdOwners
from kmtr_stream.transport.outbox import Ended, PeerOutbox
from kmtr_stream.transport.peer import Peer, peer_of
from kmtr_stream.transport.session import Observer, State, StreamSession
from kmtr_stream.transport.zmq_io import NOBLOCK, recv_frames, send_frames

log = logging.getLogger("kmtr_stream.transport.zmq")


class _Packed(list[Any]):
    """Frames of a packed message, built here to be sent: sent with copy=True.

    ``parts`` keeps the messages it packs, to requeue them when the peer is full.
    """

    parts: list[Any]


#: Messages read per poll round before outputs and monitor events get a turn.
_RECV_BATCH = 512
#: Messages sent to one connection per round before the next connection gets a turn.
_SEND_BATCH = 256
#: Identities of vanished connections remembered, to drop their stragglers.
_GONE_MEMORY = 4096
#: libzmq's per-peer queue in messages, each direction (the outbox bounds bytes above it).
HWM = 1000


class ZmqServer:
    """Serve chains over ZeroMQ (ROUTER) in a background I/O thread.

    Args:
        catalog: chains clients may select (CONFIG_FILE by name).
        endpoint: where to bind, e.g. ``"tcp://127.0.0.1:9000"`` (port 0: any free port).
        idle_timeout_s: abort an open stream after this long without a message
            (default ``limits.idle_timeout_s``).
        heartbeat_ivl_ms: ZMTP heartbeat interval (0 disables heartbeats).
        heartbeat_timeout_ms: drop a peer that answers no heartbeat for this long.
        close_timeout_s: how long a chain's end-of-stream flush may take.
        trace: ``--trace`` file stem (one file per connection) or None.
        pack_max: outputs for one connection that are already waiting go out
            packed, up to this many per ZeroMQ message (1: never pack).
        pack_bytes: stop adding to a packed message once it holds this many bytes.
        max_frame_bytes: libzmq drops a connection that sends a larger frame
            before buffering it (logged as a lost client; others carry on);
            default ``limits.max_message_bytes``.
        limits: resource limits (outbox bounds and stall timeout, connections,
            header and buffer sizes); default ``Limits()``.
        hwm: libzmq's per-peer queue in messages, each direction.
        curve: CurveZMQ keys (``curve_auth.ServerCurve``): only allow-listed clients get
            in, refusals are logged; None: no authentication (loopback is advised).
        observer: sees every stream's chain outputs (``session.Observer``).

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
        idle_timeout_s: float | None = None,
        heartbeat_ivl_ms: int = 1000,
        heartbeat_timeout_ms: int = 5000,
        close_timeout_s: float = 60.0,
        trace: str | Path | None = None,
        pack_max: int = 16,
        pack_bytes: int = 1 << 20,
        max_frame_bytes: int | None = None,
        limits: Limits | None = None,
        hwm: int = HWM,
        curve: curve_auth.ServerCurve | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.observer = observer
        self.catalog = catalog
        self._bind = endpoint
        self.idle_timeout_s = (
            self.limits.idle_timeout_s if idle_timeout_s is None else idle_timeout_s
        )
        self.heartbeat_ivl_ms = heartbeat_ivl_ms
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self.close_timeout_s = close_timeout_s
        self.trace = trace
        self.pack_max = pack_max
        self.max_frame_bytes = (
            self.limits.max_message_bytes if max_frame_bytes is None else max_frame_bytes
        )
        self.pack_bytes = pack_bytes
        self.hwm = hwm
        self.curve = curve
        self.endpoint = ""
        self.sessions: dict[bytes, StreamSession] = {}
        #: Replies waiting per connection identity (``transport.outbox``).
        self.outboxes: dict[bytes, PeerOutbox] = {}
        #: Connections dropped because their outbox stayed full.
        self.stalled_drops = 0
        #: Sessions aborted because another connection took over their routing id.
        self.takeovers = 0
        self._peers: dict[bytes, Peer] = {}
        self._takeover_counts = RepeatCounter(max_keys=_GONE_MEMORY)
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
        self._monitor: zmq.Socket | None = None
        self._drain = threading.Event()
        self._drained = threading.Event()
        self._draining = False
        self._trim = False

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

    def drain(self, timeout_s: float | None = None) -> bool:
        """Stop accepting, end every open stream (ERROR, flush, CLOSE), then stop.

        Args:
            timeout_s: longest wait for the streams to end and their replies to
                leave; default ``limits.drain_timeout_s``.

        Returns:
            True when every stream ended and every reply left in time.
        """
        timeout = self.limits.drain_timeout_s if timeout_s is None else timeout_s
        self._drain.set()
        self._wake()
        done = self._drained.wait(timeout)
        if not done:
            left = sum(s.state is not State.ENDED for s in list(self.sessions.values()))
            log.error("ZeroMQ server: drain did not finish within %g s (%d streams still "
                      "open); stopping anyway", timeout, left)
        self.stop()
        return done

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

    def _post(self, outbox: PeerOutbox, item: Any) -> None:
        outbox.put(item)
        if threading.get_ident() != self._io_ident:  # the I/O thread sends it on its own
            self._wake()

    def _sender(self, outbox: PeerOutbox) -> Any:
        def send(msg: WireMessage) -> None:
            frames = encode_frames(msg)  # encode in the producing thread, off the I/O thread
            self._post(outbox, frames)

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
            router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnect under its fixed id gets in
            router.setsockopt(zmq.MAXMSGSIZE, self.max_frame_bytes)
            router.sndhwm = router.rcvhwm = self.hwm
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
        self._monitor = monitor
        self._ready.set()
        try:
            self._loop(router, monitor)
        except Exception:
            log.exception("ZeroMQ server I/O thread crashed")
        finally:
            for identity in list(self.sessions):
                self._forget(identity, "server stopping")
            if self._draining:
                router.linger = 1000  # replies handed over just now still reach their clients
            router.disable_monitor()
            monitor.close(0)
            router.close()
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
        blocked = False  # replies wait for a full peer, or input for a full chain queue
        next_check = time.monotonic() + 1.0
        while not self._stop.is_set():
            poller.poll(5 if blocked else 250)
            self._wake_pending = False
            try:
                while self._wake_r.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass
            if self._drain.is_set() and not self._draining:
                self._begin_drain()
            drained = self._read_router(router)
            blocked = self._send_outboxes(router)
            blocked = self._feed_held() or blocked
            if drained:
                self._read_monitor(monitor)
            now = time.monotonic()
            if now >= next_check:
                self._check_idle(now)
                self._check_stalled(now)
                if self._trim and not self.sessions:
                    self._trim = False
                    release_memory()  # every stream is over: memory back to the baseline
                next_check = now + min(1.0, self.limits.outbox_stall_timeout_s / 4)
            if self._draining and not self._drained.is_set() and self._drain_done():
                self._drained.set()

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
        identity = frames[0].bytes
        owner = self._peers.get(identity)
        if owner is not None and (identity in self.sessions or identity in self.outboxes):
            peer = peer_of(frames[0], self.curve is not None, address=False)
            if not peer.same_connection(owner):
                self._taken_over(identity, owner, frames[0])
        outbox = self.outboxes.get(identity)
        if outbox is not None and (outbox.full or outbox.held or self._chain_full(identity)):
            return self._hold(identity, outbox, frames)
        return self._handle(identity, frames)

    def _chain_full(self, identity: bytes) -> bool:
        session = self.sessions.get(identity)
        return session is not None and session.would_block()

    def _handle(self, identity: bytes, frames: list[Any]) -> int:
        messages, fault = decode_message(frames[1:])
        session = self.sessions.get(identity)
        if session is None or (session.state is State.ENDED and _starts_stream(messages)):
            if identity in self._gone:
                if not _starts_stream(messages):
                    return max(1, len(messages))  # a straggler of a lost connection
                del self._gone[identity]
            if session is not None:
                self._forget(identity, None)
            session = self._open(identity, frames[0])
        self._seen[identity] = time.monotonic()
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

    def _hold(self, identity: bytes, outbox: PeerOutbox, frames: list[zmq.Frame]) -> int:
        """Keep a message of a connection whose outbox or chain queue is full; drop it past
        the budget."""
        outbox.held.append(frames)
        outbox.held_bytes += sum(len(f) for f in frames)
        self._seen[identity] = time.monotonic()  # the client is sending: not idle
        lim = self.limits
        if outbox.held_bytes > lim.outbox_bytes:
            self._drop_stalled(identity, (
                "input held while its outbox or chain queue is full exceeds "
                f"outbox_bytes={lim.outbox_bytes} "
                f"({outbox.held_bytes} bytes in {len(outbox.held)} messages)"
            ))
        return 1

    def _feed_held(self) -> bool:
        """Feed held input of connections whose outbox and chain queue have room, in order.

        Returns True when some connection still holds input.
        """
        holding = False
        for identity, outbox in list(self.outboxes.items()):
            budget = _RECV_BATCH
            while (outbox.held and not outbox.full and budget > 0
                   and not self._chain_full(identity)):
                frames = outbox.held.popleft()
                outbox.held_bytes -= sum(len(f) for f in frames)
                budget -= self._handle(identity, frames)
            holding = holding or bool(outbox.held)
        return holding

    def _open(self, identity: bytes, ident_frame: Any) -> StreamSession:
        if self._monitor is not None:
            # A previous connection under this id may have left just now: see its
            # DISCONNECTED event first, so that it cannot cut off this new stream.
            self._read_monitor(self._monitor)
        self._next_number += 1
        cid = f"zmq-{self._next_number}-{identity.hex()}"
        outbox = self.outboxes.get(identity)
        if outbox is None or outbox.closed:
            outbox = self.outboxes[identity] = PeerOutbox(
                self.limits.outbox_bytes, self.limits.outbox_messages
            )
        refusal = self._admission()
        session = StreamSession(
            self.catalog,
            cid,
            send=self._sender(outbox),
            on_ended=lambda: self._post(outbox, Ended(session)),
            trace=self.trace,
            close_timeout_s=self.close_timeout_s,
            observer=self.observer,
            background_end=True,
            limits=self.limits,
        )
        self.sessions[identity] = session
        peer = self._peers[identity] = peer_of(ident_frame, self.curve is not None)
        fd = peer.fd
        if fd >= 0:
            old = self._fds.opened(identity, fd)
            if old is not None:
                self._forget(old, "connection closed (its socket was reused)")
        log.info("connection %s opened", cid)
        if refusal is not None:
            session.fail(refusal, None)
        return session

    def _admission(self) -> KmtrError | None:
        """Why a new stream is refused now (draining, or a server limit), or None."""
        if self._draining:
            return ShutdownError("server shutting down: new streams are refused")
        open_streams = sum(1 for s in self.sessions.values() if s.state is not State.ENDED)
        try:
            check_admission(self.limits, open_streams, threading.active_count(), rss_bytes())
        except LimitError as exc:
            return exc
        return None

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

    def _taken_over(self, identity: bytes, owner: Peer, ident_frame: Any) -> None:
        """Another connection sends under ``identity``: the owner's connection is gone
        (libzmq handed its id over), so nothing of its stream may reach the newcomer."""
        newcomer = peer_of(ident_frame, self.curve is not None)
        session = self.sessions.get(identity)
        cid = session.connection_id if session is not None else identity.hex()
        self.takeovers += 1
        n = self._takeover_counts.note(identity)
        if RepeatCounter.sampled(n):
            again = f" ({n} times for this routing id)" if n > 1 else ""
            log.warning(
                "SECURITY: routing id %s of connection %s (%s) was taken over by another "
                "connection (%s); its stream is aborted and its undelivered results "
                "dropped%s", identity.hex(), cid, owner.describe(), newcomer.describe(), again,
            )
        self._forget(identity, "connection taken over by another client under its routing id")

    def _forget(self, identity: bytes, reason: str | None) -> None:
        """Drop a connection; with a reason, abort its chain if the stream was not over.

        Without a reason (the stream ended normally) its outbox stays until sent.
        """
        session = self.sessions.pop(identity, None)
        self._seen.pop(identity, None)
        live = session is not None and session.state is not State.ENDED
        if reason is None:
            return
        self._peers.pop(identity, None)
        outbox = self.outboxes.pop(identity, None)
        if outbox is not None:
            outbox.close()
        if session is None or not live:
            return
        # Messages of the lost stream may still be queued: drop them, but let a new
        # stream under this id in (``_handle``).
        self._gone[identity] = None
        while len(self._gone) > _GONE_MEMORY:
            self._gone.popitem(last=False)
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

    def _check_stalled(self, now: float) -> None:
        lim = self.limits
        for identity, outbox in list(self.outboxes.items()):
            if outbox.full and now - outbox.full_since > lim.outbox_stall_timeout_s:
                self._drop_stalled(identity, outbox.stall_reason(lim.outbox_stall_timeout_s))

    def _drop_stalled(self, identity: bytes, why: str) -> None:
        session = self.sessions.get(identity)
        cid = session.connection_id if session is not None else identity.hex()
        log.error("connection %s dropped: %s", cid, why)
        self.stalled_drops += 1
        self._forget(identity, f"connection dropped: {why}")

    def _send_outboxes(self, router: zmq.Socket) -> bool:
        """Send what every connection has waiting, each until its peer is full.

        Returns True when some connection still has replies its peer cannot take yet.
        """
        blocked = False
        for identity, outbox in list(self.outboxes.items()):
            if outbox.items:
                blocked |= self._send_one(router, identity, outbox)
            elif identity not in self.sessions and not outbox.held:
                del self.outboxes[identity]  # stream over and everything sent
                self._peers.pop(identity, None)
                self._trim = True
        return blocked

    def _send_one(self, router: zmq.Socket, identity: bytes, outbox: PeerOutbox) -> bool:
        """Send up to _SEND_BATCH replies of one connection; True if its peer is full."""
        for _ in range(_SEND_BATCH):
            if not outbox.items:
                return False
            item = outbox.pop()
            if type(item) is Ended:
                session: StreamSession = item.owner
                if self.sessions.get(identity) is session and (
                    session.client_closed or session.aborted
                ):
                    self._forget(identity, None)
                continue
            if self.pack_max > 1 and outbox.items:
                item = self._gather(outbox, item)
            try:
                send_frames(router, [identity, *item], NOBLOCK, copy=type(item) is _Packed)
            except zmq.Again:
                # This peer's queue is full: keep the order, retry on a later round.
                for inner in reversed(item.parts if type(item) is _Packed else [item]):
                    outbox.push_back(inner)
                return True
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH:
                    raise
                self._forget(identity, "client unreachable while sending results")
                return False
        return False

    def _gather(self, outbox: PeerOutbox, frames: list[Any]) -> list[Any]:
        """``frames`` plus the same connection's next waiting outputs, packed into one message.

        Only outputs already in the outbox are taken, so packing adds no wait.
        The byte cap counts each message's last frame (its data, the bulk of it).
        """
        group = [frames]
        size, cap, most = len(frames[-1]), self.pack_bytes, self.pack_max
        while outbox.items and size < cap and len(group) < most:
            nxt = outbox.peek()
            if type(nxt) is Ended:
                break
            group.append(nxt)
            size += len(nxt[-1])
            outbox.pop()
        if len(group) == 1:
            return frames
        packed = _Packed(pack_frames(group))
        packed.parts = group
        return packed

    # -- drain ------------------------------------------------------------
    def _begin_drain(self) -> None:
        # No unbind: libzmq would close the connections accepted on the endpoint with it.
        # New streams are refused instead (``_admission``: ERROR and CLOSE).
        self._draining = True
        open_sessions = [s for s in self.sessions.values() if s.state is State.OPEN]
        log.info("ZeroMQ server draining: ending %d open streams", len(open_sessions))
        for session in open_sessions:
            session.fail(ShutdownError(
                "server shutting down: no further messages are taken; the outputs of "
                "everything received follow, then CLOSE"
            ), None)

    def _drain_done(self) -> bool:
        if any(s.state is not State.ENDED for s in self.sessions.values()):
            return False
        return not any(o.items for o in self.outboxes.values())


def _starts_stream(messages: list[Any]) -> bool:
    """True when a message list opens a stream (CONFIG_FILE or the XML header first)."""
    return bool(messages) and isinstance(messages[0], (ConfigFile, XmlHeader))
