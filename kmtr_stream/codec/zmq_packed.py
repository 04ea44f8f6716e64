"""Packed ZeroMQ messages: several MRD messages in one ZeroMQ frame.

libzmq moves a frame larger than its 8 kB I/O batch with its own system
calls, so an 8-coil readout (16.8 kB) costs several syscalls and thread
wake-ups per hop however fast Python is. When several messages are already
waiting to go out (a recorded dataset, a burst of chain outputs), a sender
may pack them into one frame, which libzmq moves in one go::

    frame 0   frame_header(PACKED_ID, [n])     (magic, version, id 0, 1 part, n)
    frame 1   n bytes: for each message in order, its frame 0 followed by its
              non-empty payload parts; each of these starts at a multiple of
              8 bytes into the frame (zero padding between), so that arrays
              decoded in place are aligned for every ISMRMRD data type

Each inner message is exactly the frames ``encode_frames`` gives, so it is
self-delimiting (its frame 0 lists its part lengths) and is checked by
``decode_frames`` like any other message. Nothing waits to be packed: a lone
message goes out as itself. Receivers get ``np.frombuffer`` views into the
packed frame, without copies; the sender makes one copy to join the parts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from kmtr_stream.codec.parts import Buffer
from kmtr_stream.codec.zmq_frames import (
    _FIXED,
    _HEADERS,
    _LENGTHS,
    MAGIC,
    MAX_PARTS,
    ZMQ_FRAMING_VERSION,
    frame_header,
)
from kmtr_stream.errors import ProtocolError

#: Frame-0 message id of a packed message (no MRD message uses id 0).
PACKED_ID = 0
_PACKED_HEADER = _HEADERS[1]
_PACKED_SIZE = _PACKED_HEADER.size
ALIGN = 8
_PADS = [b"\0" * k for k in range(ALIGN)]


def _aligned(offset: int) -> int:
    return (offset + ALIGN - 1) & -ALIGN


def pack_frames(messages: Sequence[Sequence[Buffer]]) -> list[Buffer]:
    """One packed ZeroMQ message from several messages' frames (as ``encode_frames`` gives)."""
    pieces: list[Buffer] = []
    off = 0
    for frame in itertools.chain.from_iterable(messages):
        pieces.append(frame)
        off += len(frame)
        pad = -off % ALIGN
        if pad:
            pieces.append(_PADS[pad])
            off += pad
    body = b"".join(pieces)
    return [frame_header(PACKED_ID, [len(body)]), body]


def packed_body(frames: Sequence[Any]) -> memoryview | None:
    """The packed frame of a packed ZeroMQ message, or None when ``frames`` is not one.

    Only a sound frame 0 (magic, version, id 0, one part) marks a packed
    message; anything else is left to ``decode_frames`` and its errors.

    Raises:
        ProtocolError: frame 0 declares a packed message but the frames disagree with it.
    """
    if not frames or len(frames[0]) != _PACKED_SIZE:
        return None
    magic, version, msg_id, nparts, n = _PACKED_HEADER.unpack_from(frames[0])
    if msg_id != PACKED_ID or nparts != 1 or magic != MAGIC or version != ZMQ_FRAMING_VERSION:
        return None
    if len(frames) != 2:
        raise ProtocolError(f"packed message has {len(frames) - 1} payload frames, expected 1")
    body = memoryview(frames[1].buffer if hasattr(frames[1], "buffer") else frames[1])
    if len(body) != n:
        raise ProtocolError(f"packed frame has {len(body)} bytes, frame 0 declares {n}")
    return body


class _Where:
    """Formats "packed message N (byte K)" only when an error message needs it."""

    __slots__ = ("number", "offset")

    def __init__(self, number: int, offset: int) -> None:
        self.number, self.offset = number, offset

    def __str__(self) -> str:
        return f"packed message {self.number} (byte {self.offset})"


def unpack_frames(body: memoryview) -> tuple[list[list[memoryview]], ProtocolError | None]:
    """Split a packed frame into each message's frames (views, no copies).

    Returns the messages up to the first structural fault and that fault (or
    None): a message after a broken one cannot be located, while the ones
    before it are intact and are kept.
    """
    out: list[list[memoryview]] = []
    off, end = 0, len(body)
    fixed = _FIXED.size
    while off < end:
        where = _Where(len(out), off)
        if end - off < fixed:
            return out, ProtocolError(f"{where}: {end - off} bytes left, less than a frame 0")
        magic, version, msg_id, nparts = _FIXED.unpack_from(body, off)
        if magic != MAGIC or version != ZMQ_FRAMING_VERSION:
            return out, ProtocolError(
                f"{where}: frame 0 magic/version {bytes(magic)!r}/{version} are not "
                f"{MAGIC!r}/{ZMQ_FRAMING_VERSION}"
            )
        if msg_id == PACKED_ID:
            return out, ProtocolError(f"{where}: a packed message cannot hold another one")
        if nparts > MAX_PARTS:
            return out, ProtocolError(f"{where}: frame 0 declares {nparts} payload frames")
        head_end = off + fixed + 8 * nparts
        if head_end > end:
            return out, ProtocolError(f"{where}: frame 0 runs past the end of the packed frame")
        lengths = _LENGTHS[nparts].unpack_from(body, off + fixed)
        frames = [body[off:head_end]]
        off = _aligned(head_end)
        for n in lengths:
            if n:
                if off + n > end:
                    return out, ProtocolError(
                        f"{where}: a {n}-byte part runs past the end of the packed frame"
                    )
                frames.append(body[off:off + n])
                off = _aligned(off + n)
        out.append(frames)
    return out, None


def split_message(frames: Sequence[Any]) -> tuple[list[Sequence[Any]], ProtocolError | None]:
    """The messages one received ZeroMQ message carries, and a structural fault or None.

    A plain message is returned as itself; a packed one as its inner
    messages (up to any fault). Each still goes through ``decode_frames``.
    """
    try:
        body = packed_body(frames)
    except ProtocolError as exc:
        return [], exc
    if body is None:
        return [frames], None
    inner, fault = unpack_frames(body)
    return list(inner), fault
