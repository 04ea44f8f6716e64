"""Client for both endpoints: stream MRD messages in, collect what comes back.

URLs: ``"tcp://host:port"`` or ``"zmq://host:port"`` connect to the ZeroMQ
endpoint (a DEALER socket), ``"mrd://host:port"`` to the MRD/TCP endpoint.

Replies read the same in both results modes: a TEXT holding a k-MTR JSON
result comes out as a ``Result``, an ERROR-level log line (ours, or a
python-ismrmrd-server traceback) as an ``ErrorReport`` (``codec.standard``).
The MRD/TCP client writes text NUL-terminated, as the python-ismrmrd-server
and Gadgetron clients do.

Example::

    with StreamClient.connect("tcp://127.0.0.1:9000") as client:
        client.send(XmlHeader(xml))
        client.send_many(acquisitions)
        client.send(Close())
        replies = client.receive_until_close(timeout_s=30)
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import zmq
from zmq.utils.monitor import parse_monitor_message

from kmtr_stream.codec.standard import parse_text
from kmtr_stream.codec.stream import StreamReader, encode_stream_parts
from kmtr_stream.codec.zmq_frames import encode_frames
from kmtr_stream.codec.zmq_packed import decode_message, pack_frames
from kmtr_stream.errors import KmtrError, ProtocolError
from kmtr_stream.messages import Close, Text, WireMessage
from kmtr_stream.transport.zmq_io import NOBLOCK, recv_frames, send_frames

if TYPE_CHECKING:
    from kmtr_stream.transport.curve_auth import ClientCurve

ZMQ_SCHEMES = ("tcp", "zmq")
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                     | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
#: Messages a ZeroMQ client queues before a send waits (a packed message counts once).
SNDHWM = 64
C = TypeVar("C", bound="StreamClient")
MRD_SCHEME = "mrd"


class ClientTimeoutError(KmtrError):
    """No CLOSE arrived in time; ``received`` holds what did arrive."""

    code = "timeout"

    def __init__(self, message: str, received: list[WireMessage]) -> None:
        super().__init__(message)
        self.received = received


def split_url(url: str) -> tuple[str, str, int]:
    """``"scheme://host:port"`` -> ``(scheme, host, port)``.

    Raises:
        KmtrError: the URL has no known scheme or no port.
    """
    scheme, sep, rest = url.partition("://")
    host, _, port = rest.rpartition(":")
    if not sep or scheme not in (*ZMQ_SCHEMES, MRD_SCHEME) or not host or not port.isdigit():
        raise KmtrError(
            f"not a stream URL: {url!r} (expected tcp://host:port for ZeroMQ "
            "or mrd://host:port for MRD/TCP)"
        )
    return scheme, host.strip("[]"), int(port)


class StreamClient:
    """Base of the two transports; use ``StreamClient.connect(url)``."""

    url = ""

    @staticmethod
    def connect(
        url: str, timeout_s: float = 10.0, curve: ClientCurve | None = None
    ) -> StreamClient:
        """Connect to ``url`` (see module docstring); MRD/TCP connects within ``timeout_s``.

        ``curve`` (``curve_auth.ClientCurve``): authenticate to a ZeroMQ server started
        with ``--curve-keys``; MRD/TCP has no authentication, so it is refused there.
        """
        scheme, host, port = split_url(url)
        if scheme == MRD_SCHEME:
            if curve is not None:
                raise KmtrError(f"{url}: MRD/TCP has no CURVE authentication; use tcp://")
            return MrdStreamClient(host, port, timeout_s)
        return ZmqStreamClient(f"tcp://{host}:{port}", curve=curve)

    def send(self, msg: WireMessage) -> None:
        """Send one message (blocks while the transport's buffers are full)."""
        raise NotImplementedError

    def send_many(self, messages: Iterable[WireMessage], *, pack: int = 1) -> int:
        """Send every message in order; returns how many were sent.

        ``pack > 1`` sends up to ``pack`` consecutive messages in one transport
        write (one packed ZeroMQ message, or one socket write on MRD/TCP): for
        data already in hand, such as a recorded dataset. A message then waits
        until ``pack`` are collected, so a live feed that yields readouts one TR
        apart should keep the default of 1.
        """
        size = max(1, pack)
        n = 0
        group: list[WireMessage] = []
        for msg in messages:
            group.append(msg)
            if len(group) >= size:
                self._send_group(group)
                n += len(group)
                group = []
        if group:
            self._send_group(group)
            n += len(group)
        return n

    def _send_group(self, messages: list[WireMessage]) -> None:
        """Send ``messages`` in one transport write."""
        for msg in messages:
            self.send(msg)

    def receive(self, timeout_s: float) -> WireMessage | None:
        """The next incoming message, or None when none arrived within ``timeout_s``."""
        raise NotImplementedError

    def replies(self, timeout_s: float = 60.0) -> Iterator[WireMessage]:
        """Yield what the server sends, as it arrives, up to its CLOSE (not yielded).

        Nothing is kept, so a long stream's replies can be written out or
        counted without holding them all in memory.

        Raises:
            ClientTimeoutError: CLOSE did not arrive within ``timeout_s`` overall.
            ProtocolError: the server sent something undecodable.
        """
        deadline = time.monotonic() + timeout_s
        n = 0
        while True:
            left = deadline - time.monotonic()
            msg = self.receive(max(0.0, left)) if left > 0 else None
            if msg is None:
                raise self._no_close(timeout_s, n)
            if isinstance(msg, Close):
                return
            n += 1
            yield msg

    def _no_close(self, timeout_s: float, received: int) -> ClientTimeoutError:
        return ClientTimeoutError(
            f"{self.url}: no CLOSE within {timeout_s:g} s ({received} messages received)", []
        )

    def receive_until_close(self, timeout_s: float = 60.0) -> list[WireMessage]:
        """Everything the server sends up to its CLOSE (not included).

        Raises:
            ClientTimeoutError: CLOSE did not arrive within ``timeout_s`` overall;
                its ``received`` holds what did arrive.
            ProtocolError: the server sent something undecodable.
        """
        out: list[WireMessage] = []
        try:
            for msg in self.replies(timeout_s):
                out.append(msg)
        except ClientTimeoutError as exc:
            raise ClientTimeoutError(str(exc), out) from None
        return out

    def close(self) -> None:
        """Release the connection (does not send CLOSE)."""

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ZmqStreamClient(StreamClient):
    """DEALER client of the ZeroMQ endpoint.

    Sending also picks up replies that are already waiting, so a long
    ``send_many`` never lets the server's output queue up unread; while the
    outgoing queue is full (``sndhwm`` messages, then the server's own limit)
    a send waits for room and takes in replies meanwhile, so both directions
    keep moving with a bounded amount of data in flight. Replies are taken
    in batches (everything waiting, without blocking) and handed out one by
    one; a reply that does not decode is raised by ``receive`` in its place
    in the order.

    With ``curve`` (``curve_auth.ClientCurve``) the socket is a CURVE client; a server
    that refuses the handshake (key not allowed, wrong server key) makes ``send`` and
    ``receive`` raise KmtrError saying so, instead of waiting out their timeouts.
    """

    def __init__(
        self,
        endpoint: str,
        context: zmq.Context | None = None,
        sndhwm: int = SNDHWM,
        send_timeout_s: float = 60.0,
        curve: ClientCurve | None = None,
    ) -> None:
        self.url = endpoint
        self.send_timeout_s = send_timeout_s
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.linger = 0
        self._sock.sndhwm = sndhwm
        self._sock.rcvhwm = 100_000
        self._monitor: zmq.Socket | None = None
        if curve is not None:
            curve.apply(self._sock)
            self._monitor = self._sock.get_monitor_socket(
                _HANDSHAKE_FAILED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._sock.connect(endpoint)
        self._inbox: deque[WireMessage | ProtocolError] = deque()
        self._sent = 0
        self._poller = zmq.Poller()
        self._poller.register(self._sock, zmq.POLLIN | zmq.POLLOUT)

    def send(self, msg: WireMessage) -> None:
        self._send_group([msg])

    def _send_group(self, messages: list[WireMessage]) -> None:
        frames = [encode_frames(msg) for msg in messages]
        if len(frames) > 1:
            self._send(pack_frames(frames), True)
        else:
            self._send(frames[0], False)
        before, self._sent = self._sent, self._sent + len(messages)
        if before // 64 != self._sent // 64:  # every 64 messages sent
            self._pick_up()

    def _send(self, frames: list[Any], copy: bool) -> None:
        """Send one ZeroMQ message; while the queue is full, take in replies.

        Raises:
            ClientTimeoutError: no room for ``send_timeout_s`` (the server takes
                nothing); replies already taken in stay available to ``receive``.
        """
        sock = self._sock
        waiting_since = 0.0
        while True:
            try:
                send_frames(sock, frames, NOBLOCK, copy)
                return
            except zmq.Again:
                now = time.monotonic()
                if not waiting_since:
                    waiting_since = now
                elif now - waiting_since > self.send_timeout_s:
                    raise ClientTimeoutError(
                        f"{self.url}: the server took no message for {self.send_timeout_s:g} s "
                        "(outgoing queue full); nothing more was sent",
                        [],
                    ) from None
                self._pick_up()
                self._check_handshake()
                self._poller.poll(100)

    def _check_handshake(self) -> None:
        """CURVE only: raise once the server refused the handshake; stop watching on success."""
        mon = self._monitor
        while mon is not None:
            try:
                event = parse_monitor_message(mon.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._close_monitor()
                return
            if event["event"] & _HANDSHAKE_FAILED:
                raise KmtrError(
                    f"{self.url}: the server refused this client's CURVE handshake: is this "
                    "client's public key in the server's clients/ directory, and is the "
                    "server key the server's?"
                )

    def _close_monitor(self) -> None:
        if self._monitor is not None:
            self._sock.disable_monitor()
            self._monitor.close(0)
            self._monitor = None

    def send_frames(self, frames: list[Any]) -> None:
        """Send raw frames (e.g. hand-built, for protocol tests)."""
        self._sock.send_multipart(frames, copy=False)

    def _pick_up(self) -> None:
        """Take every reply already waiting, without blocking, into the inbox."""
        sock, inbox = self._sock, self._inbox
        while True:
            try:
                frames = recv_frames(sock, NOBLOCK)
            except zmq.Again:
                return
            messages, fault = decode_message(frames)
            inbox.extend(parse_text(m) if type(m) is Text else m for m in messages)
            if fault is not None:
                inbox.append(fault)

    def replies(self, timeout_s: float = 60.0) -> Iterator[WireMessage]:
        # Hands out everything already taken in before looking at the clock again.
        inbox = self._inbox
        deadline = time.monotonic() + timeout_s
        n = 0
        while True:
            while inbox:
                item = inbox.popleft()
                if isinstance(item, ProtocolError):
                    raise item
                if type(item) is Close:
                    return
                n += 1
                yield item
            left = deadline - time.monotonic()
            msg = self.receive(left) if left > 0 else None
            if msg is None:
                raise self._no_close(timeout_s, n)
            inbox.appendleft(msg)

    def receive(self, timeout_s: float) -> WireMessage | None:
        if not self._inbox:
            self._pick_up()
            if not self._inbox:
                if not self._wait_readable(timeout_s):
                    return None
                self._pick_up()
                if not self._inbox:
                    return None
        item = self._inbox.popleft()
        if isinstance(item, ProtocolError):
            raise item
        return item

    def _wait_readable(self, timeout_s: float) -> bool:
        """Poll for a reply; while a CURVE handshake is pending, also for its outcome."""
        deadline = time.monotonic() + timeout_s
        while self._monitor is not None:
            self._check_handshake()
            left = deadline - time.monotonic()
            if self._monitor is None or left <= 0:
                break
            if self._sock.poll(int(min(left, 0.1) * 1000), zmq.POLLIN):
                return True
        left = max(0.0, deadline - time.monotonic())
        return bool(self._sock.poll(int(left * 1000), zmq.POLLIN))

    def close(self) -> None:
        self._close_monitor()
        self._sock.close(0)


class MrdStreamClient(StreamClient):
    """MRD/TCP client; a reader thread collects replies while the caller sends.

    Args:
        host: server host.
        port: server port.
        timeout_s: connect timeout.
        text_nul: end HEADER, TEXT and CONFIG_TEXT with a NUL counted in the
            length, as the python-ismrmrd-server and Gadgetron clients do
            (False: as ``ismrmrd.serialization`` does).
    """

    def __init__(
        self, host: str, port: int, timeout_s: float = 10.0, text_nul: bool = True
    ) -> None:
        self.url = f"mrd://{host}:{port}"
        self.text_nul = text_nul
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise KmtrError(f"{self.url}: cannot connect: {exc}") from None
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._inbox: queue.Queue[WireMessage | BaseException | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, name="mrd-client", daemon=True)
        self._reader.start()
        self._ended: BaseException | None = None

    def _read_loop(self) -> None:
        reader = StreamReader.from_socket(self._sock)
        try:
            for msg in reader:
                self._inbox.put(parse_text(msg) if type(msg) is Text else msg)
            self._inbox.put(None)
        except (ProtocolError, OSError) as exc:
            self._inbox.put(exc)

    def send(self, msg: WireMessage) -> None:
        self._sendall(b"".join(encode_stream_parts(msg, self.text_nul)))

    def _send_group(self, messages: list[WireMessage]) -> None:
        nul = self.text_nul
        self._sendall(b"".join(part for m in messages for part in encode_stream_parts(m, nul)))

    def _sendall(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise KmtrError(f"{self.url}: send failed: {exc}") from None

    def send_raw(self, data: bytes) -> None:
        """Send raw bytes (e.g. hand-built, for protocol tests)."""
        self._sock.sendall(data)

    def shutdown_send(self) -> None:
        """Half-close: tell the server no more bytes follow (replies still arrive)."""
        self._sock.shutdown(socket.SHUT_WR)

    def receive(self, timeout_s: float) -> WireMessage | None:
        if self._ended is not None:
            raise self._ended
        try:
            item = self._inbox.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return None
        if item is None:
            self._ended = KmtrError(f"{self.url}: server closed the connection without CLOSE")
            raise self._ended
        if isinstance(item, BaseException):
            self._ended = item
            raise item
        return item

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._reader.join(2.0)
