"""Where the servers may listen: loopback by default, the network only when asked.

ZeroMQ without CURVE (``serve --curve-keys``) and MRD/TCP (which has no
authentication) accept any client that can reach them. Binding either to a
non-loopback address (``tcp://*``, ``0.0.0.0``, ``::``, an interface or a
host's address) logs a loud WARNING; MRD/TCP refuses it unless
``allow_remote`` (``serve --allow-remote``) is given.
"""

from __future__ import annotations

import ipaddress
import logging

from kmtr_stream.errors import KmtrError

log = logging.getLogger("kmtr_stream.transport")

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; False for wildcards, interfaces, other hosts."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def zmq_host(endpoint: str) -> str | None:
    """The host of a ``tcp://HOST:PORT`` endpoint; None for local transports (ipc, inproc)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme != "tcp":
        return None
    return rest.rpartition(":")[0] or rest


def _loud(text: str) -> None:
    log.warning("*" * 72)
    log.warning("SECURITY: %s", text)
    log.warning("*" * 72)


def check_zmq_bind(endpoint: str, authenticated: bool) -> None:
    """Warn loudly when ``endpoint`` is reachable from the network without authentication."""
    host = zmq_host(endpoint)
    if host is None or authenticated or is_loopback(host):
        return
    _loud(f"ZeroMQ endpoint {endpoint} is not loopback and has no authentication: anyone who "
          "can reach it can stream and read results; use --curve-keys DIR")


def check_mrd_bind(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback MRD/TCP address unless ``allow_remote``; then warn loudly.

    Raises:
        KmtrError: ``host`` is not loopback and ``allow_remote`` is False.
    """
    if is_loopback(host):
        return
    if not allow_remote:
        raise KmtrError(
            f"MRD/TCP has no authentication: refusing to listen on {host!r}, which is not a "
            "loopback address; pass --allow-remote (MrdServer(allow_remote=True)) to accept "
            "unauthenticated clients from the network"
        )
    _loud(f"MRD/TCP listens on {host!r} (not loopback) without authentication: anyone who can "
          "reach it can stream and read results (--allow-remote)")
