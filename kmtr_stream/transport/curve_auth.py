"""CurveZMQ authentication of the ZeroMQ endpoint: a ZAP handler with a client allow-list.

Key directory (``kmtr-stream serve --curve-keys DIR``), in ZeroMQ's own
certificate format (``zmq.auth.create_certificates``, ``kmtr-stream keys new``)::

    DIR/server.key_secret   the server's keypair (secret: keep it 0600)
    DIR/server.key          its public half: give it to every client
    DIR/clients/*.key       public keys of the clients allowed in, one file each

The ZAP handler (ZeroMQ RFC 27) runs in a thread on the server socket's own
context and answers every CURVE handshake: a client key in ``clients/``
gets in, any other key is refused and logged with the peer address and the
key's fingerprint. A client without CURVE, or with the wrong server key,
fails the handshake before ZAP is asked; the server logs that from its socket
monitor (``log_handshake_failure``). Refusals are logged for the first time
per address and key, then every 100th, so a client retrying in a loop cannot
flood the log. The allow-list is read when the server starts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from kmtr_stream.errors import ConfigError
from kmtr_stream.logsafe import RepeatCounter

log = logging.getLogger("kmtr_stream.transport.auth")

SERVER_NAME = "server"
CLIENTS_DIR = "clients"
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = "kmtr"
#: Handshake failures the server socket's monitor reports.
HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
_REFUSALS_REMEMBERED = 4096


def curve_available() -> bool:
    """True when this pyzmq/libzmq has CURVE security."""
    return bool(zmq.has("curve"))


def fingerprint(public_key: bytes) -> str:
    """Short fingerprint of a Z85 (40 bytes) or raw (32 bytes) public key: sha256, 16 hex."""
    raw = zmq.utils.z85.decode(public_key) if len(public_key) == 40 else public_key
    return hashlib.sha256(raw).hexdigest()[:16]


def new_keypair(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (0600) into ``directory``.

    Raises:
        ConfigError: CURVE is unavailable, the name is not a plain file name, or a
            file of that name exists already (keys are never overwritten).
    """
    if not curve_available():
        raise ConfigError("this pyzmq/libzmq has no CURVE support (zmq.has('curve') is False)")
    if not name or Path(name).name != name or name.startswith("."):
        raise ConfigError(f"key name {name!r} must be a plain file name")
    out = Path(directory)
    for suffix in (".key", ".key_secret"):
        if (out / f"{name}{suffix}").exists():
            raise ConfigError(f"{out / (name + suffix)} exists already; keys are not overwritten")
    out.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(out, name)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


@dataclass(frozen=True)
class ClientCurve:
    """A client's CURVE settings: the server's public key and the client's keypair (Z85)."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def from_files(cls, server_key: str | Path, client_secret: str | Path) -> ClientCurve:
        """From the server's ``.key`` file and the client's ``.key_secret`` file.

        Raises:
            ConfigError: a file is missing or holds no key of the expected kind.
        """
        server_public, _ = _load(server_key, secret=False)
        public, secret = _load(client_secret, secret=True)
        assert secret is not None
        return cls(server_public, public, secret)

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client (before it connects)."""
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


def _load(path: str | Path, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read a ZeroMQ certificate: {exc}") from None
    if public is None or (secret and secret_key is None):
        kind = "secret (.key_secret)" if secret else "public (.key)"
        raise ConfigError(f"{path}: not a {kind} ZeroMQ certificate")
    return public, secret_key


@dataclass(frozen=True)
class ServerCurve:
    """The server's keypair and the allow-list of client public keys, from a key directory.

    Attributes:
        directory: the key directory.
        public: the server's public key (Z85).
        secret: the server's secret key (Z85).
        allowed: allowed client public key (Z85) -> its file's name.
    """

    directory: Path
    public: bytes
    secret: bytes
    allowed: dict[bytes, str]

    @classmethod
    def load(cls, directory: str | Path) -> ServerCurve:
        """Read ``DIR/server.key_secret`` and ``DIR/clients/*.key`` (see the module doc).

        Raises:
            ConfigError: CURVE unavailable, a file missing or unreadable, no client key.
        """
        if not curve_available():
            raise ConfigError("--curve-keys needs CURVE, which this pyzmq/libzmq lacks "
                              "(zmq.has('curve') is False)")
        root = Path(directory)
        secret_file = root / f"{SERVER_NAME}.key_secret"
        public, secret = _load(secret_file, secret=True)
        assert secret is not None
        mode = secret_file.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("%s can be read by other users (mode %o); chmod 600 it",
                        secret_file, stat.S_IMODE(mode))
        clients = root / CLIENTS_DIR
        allowed: dict[bytes, str] = {}
        for path in sorted(clients.glob("*.key")) if clients.is_dir() else []:
            key, _ = _load(path, secret=False)
            allowed[key] = path.stem
        if not allowed:
            raise ConfigError(f"{clients}: no client public keys (*.key): no client could "
                              "connect; add one per client (kmtr-stream keys new)")
        return cls(root, public, secret, allowed)

    def secure(self, router: zmq.Socket, ctx: zmq.Context[Any]) -> ZapHandler:
        """Start the ZAP handler on ``ctx`` and make ``router`` a CURVE server (before bind)."""
        zap = ZapHandler(ctx, self.allowed, str(self.directory / CLIENTS_DIR))
        zap.start()
        router.curve_secretkey = self.secret
        router.curve_publickey = self.public
        router.zap_domain = ZAP_DOMAIN.encode()
        router.curve_server = True
        return zap


class _RefusalLog:
    """Logs a refusal the first time per (address, key), then every 100th (thread-safe)."""

    def __init__(self) -> None:
        self._counts = RepeatCounter(max_keys=_REFUSALS_REMEMBERED)

    def __call__(self, address: str, who: str, why: str) -> None:
        n = self._counts.note((address, who))
        if RepeatCounter.sampled(n):
            again = f" ({n} times so far)" if n > 1 else ""
            log.warning("ZeroMQ client refused: address %s, %s: %s%s", address, who, why, again)


refusal_log = _RefusalLog()


class ZapHandler:
    """ZAP (RFC 27) handler thread: CURVE keys on the allow-list get in, nothing else."""

    def __init__(self, ctx: zmq.Context[Any], allowed: dict[bytes, str], where: str) -> None:
        self._ctx = ctx
        self._allowed = dict(allowed)
        self._where = where
        self._sock = ctx.socket(zmq.REP)
        self._sock.linger = 0
        self._sock.bind(ZAP_ENDPOINT)  # fails if another handler holds this context
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zmq-zap", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        sock = self._sock
        try:
            while not self._stop.is_set():
                if not sock.poll(100, zmq.POLLIN):
                    continue
                request = sock.recv_multipart()
                sock.send_multipart(self._answer(request))
        except zmq.ZMQError as exc:
            if not self._stop.is_set():
                log.error("ZAP handler stopped: %s", exc)
        finally:
            sock.close(0)

    def _answer(self, frames: list[bytes]) -> list[bytes]:
        """The ZAP reply to one request (version, id, domain, address, identity, mechanism, ...)."""
        if len(frames) < 6:
            return [b"1.0", frames[1] if len(frames) > 1 else b"", b"500",
                    b"malformed ZAP request", b"", b""]
        version, request_id, _domain, address, _identity, mechanism = frames[:6]
        addr = address.decode("ascii", "replace")
        if mechanism != b"CURVE" or len(frames) < 7:
            refusal_log(addr, f"mechanism {mechanism.decode('ascii', 'replace')}",
                        "only CURVE clients are accepted")
            return [version, request_id, b"400", b"CURVE required", b"", b""]
        key = zmq.utils.z85.encode(frames[6])
        name = self._allowed.get(key)
        if name is None:
            refusal_log(addr, f"CURVE key {key.decode()} (fingerprint {fingerprint(key)})",
                        f"not in the allow-list {self._where}")
            return [version, request_id, b"400", b"key not allowed", b"", b""]
        log.info("ZeroMQ client allowed: address %s, key %r (fingerprint %s)", addr, name,
                 fingerprint(key))
        return [version, request_id, b"200", b"OK", name.encode(), b""]


def log_handshake_failure(event: Any) -> None:
    """Log a failed handshake the server socket's monitor reported where no ZAP request
    was made (the ZAP handler logs its own refusals); libzmq names no peer address here."""
    if int(event["event"]) == int(zmq.EVENT_HANDSHAKE_FAILED_AUTH):
        return  # refused by the ZAP handler, which logged the address and the key
    kind = ("security handshake failed: the client does not use CURVE or has the wrong "
            "server key" if int(event["event"]) == int(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
            else "handshake failed")
    refusal_log("unknown (refused before ZAP)", "no accepted key",
                f"{kind} (libzmq code {int(event['value']):#x})")
