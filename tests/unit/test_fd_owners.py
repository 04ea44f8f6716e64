"""Disconnect events by file descriptor reach the right connection, with descriptor reuse."""

from __future__ import annotations

from kmtr_stream.transport.fd_owners import FdOwners


def test_disconnect_maps_to_owner() -> None:
    fds = FdOwners()
    assert fds.opened(b"A", 7) is None
    assert fds.disconnected(7) == b"A"
    assert fds.disconnected(7) is None and len(fds) == 0


def test_late_event_of_a_finished_stream_spares_the_next_owner() -> None:
    # A streamed and closed normally; its DISCONNECTED event is still queued when
    # B's first message arrives on the same (reused) descriptor.
    fds = FdOwners()
    fds.opened(b"A", 7)
    assert fds.opened(b"B", 7) == b"A"  # A is certainly gone
    assert fds.disconnected(7) is None  # A's late event: stale, B keeps going
    assert fds.disconnected(7) == b"B"  # B's own event


def test_same_identity_again_is_not_a_reuse() -> None:
    fds = FdOwners()
    fds.opened(b"A", 3)
    assert fds.opened(b"A", 3) is None
    assert fds.disconnected(3) == b"A"


def test_several_reuses_before_the_events_arrive() -> None:
    fds = FdOwners()
    fds.opened(b"A", 5)
    fds.opened(b"B", 5)
    fds.opened(b"C", 5)
    assert fds.disconnected(5) is None
    assert fds.disconnected(5) is None
    assert fds.disconnected(5) == b"C"
    assert fds.disconnected(9) is None  # never opened
