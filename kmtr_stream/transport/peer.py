"""Which connection a ROUTER message came from, read from libzmq's message metadata.

A routing id is chosen by the client, so it does not say who is sending: with
``ROUTER_HANDOVER`` a second connection under a live id takes it over, and
what the server sends to that id goes to the newcomer. The connection
itself is named by the file descriptor the message arrived on (``SRCFD``) and,
under CurveZMQ, by the user id the ZAP handler gave its key. A session keeps
the ``Peer`` that opened it; a message under its id from another ``Peer``
means the connection that owned the session is gone.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import zmq


class Peer(NamedTuple):
    """The connection behind a routing id."""

    fd: int
    #: ZAP user id (the allow-list name of the client's key); "" without CurveZMQ.
    user: str
    #: The remote address libzmq reports ("" when it does not).
    address: str

    def same_connection(self, other: Peer) -> bool:
        """True when both name one connection (the address is informative only)."""
        return self.fd == other.fd and self.user == other.user

    def describe(self) -> str:
        """``fd 7, key 'scanner1', address 10.0.0.5`` for logs."""
        parts = [f"fd {self.fd}"]
        if self.user:
            parts.append(f"key {self.user!r}")
        if self.address:
            parts.append(f"address {self.address}")
        return ", ".join(parts)


def _text(frame: Any, name: str) -> str:
    try:
        value = frame.get(name)
    except (zmq.ZMQError, AttributeError, TypeError):
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def peer_of(frame: Any, authenticated: bool, address: bool = True) -> Peer:
    """The ``Peer`` of a ROUTER message from its routing-id frame (a ``zmq.Frame``).

    ``authenticated``: the socket runs CurveZMQ with ZAP, so messages carry a user id.
    ``address``: also read the remote address (for logs; not needed to compare).
    """
    try:
        fd = int(frame.get(zmq.SRCFD))
    except (zmq.ZMQError, ValueError, TypeError, AttributeError):
        fd = -1
    user = _text(frame, "User-Id") if authenticated else ""
    return Peer(fd, user, _text(frame, "Peer-Address") if address else "")
