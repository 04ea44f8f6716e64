"""Which connection identity owns which TCP file descriptor, for disconnect events.

libzmq's socket monitor reports a disconnect by file descriptor, and the
kernel reuses a closed descriptor for the next connection at once. The
monitor's events arrive on their own socket, so the server may see a new
connection's first message on fd 7 before the DISCONNECTED event of the
previous owner of fd 7. A mapping is therefore kept until its own
DISCONNECTED event has been seen, even after the stream ended normally:
when a new identity takes over a descriptor whose event is still pending,
that event is marked stale and skipped when it comes, instead of cutting off
the new connection.
"""

from __future__ import annotations

import collections


class FdOwners:
    """Descriptor <-> identity bookkeeping for one ROUTER socket (I/O thread only)."""

    def __init__(self) -> None:
        self._owner: dict[int, bytes] = {}
        self._stale: collections.Counter[int] = collections.Counter()

    def opened(self, identity: bytes, fd: int) -> bytes | None:
        """``identity`` now owns ``fd``; returns the previous owner if it was another one.

        The previous owner's DISCONNECTED event has not been seen yet (it would
        have removed the mapping): it is marked stale. The caller should drop
        the previous owner, whose connection is certainly gone.
        """
        old = self._owner.get(fd)
        for other, owner in list(self._owner.items()):
            if owner == identity and other != fd:
                # This id was handed over to a new connection: the old one's event is moot.
                del self._owner[other]
        self._owner[fd] = identity
        if old is None or old == identity:
            return None
        self._stale[fd] += 1
        return old

    def disconnected(self, fd: int) -> bytes | None:
        """The identity a DISCONNECTED event for ``fd`` is about, or None (stale or unknown)."""
        if self._stale[fd] > 0:
            self._stale[fd] -= 1
            if not self._stale[fd]:
                del self._stale[fd]
            return None
        self._stale.pop(fd, None)
        return self._owner.pop(fd, None)

    def __len__(self) -> int:
        return len(self._owner)
