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
self-delimiting (its frame 0 lists its part lengths) and gets every check a
lone message gets (readouts are decoded straight from their offsets, other
messages through ``decode_frames``). ``split_message`` gives the inner
messages as frames instead, for code that forwards them undecoded.

Nothing waits to be packed: a lone message goes out as itself. Receivers get
``np.frombuffer`` views into the packed frame, without copies; the sender
makes one copy to join the parts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, TypeAlias

from kmtr_stream.codec.parts import Buffer, decode_acquisition_at
from kmtr_stream.codec.zmq_frames import (
    _ACQ_ID,
    _FIXED,
    _HEADERS,
    _LENGTHS,
    MAGIC,
    MAX_PARTS,
    ZMQ_FRAMING_VERSION,
    decode_frames,
    frame_header,
)
from kmtr_stream.errors import ProtocolError
from kmtr_stream.messages import WireMessage

#: Frame-0 message id of a packed message (no MRD message uses id 0).
PACKED_ID = 0
_PACKED_HEADER = _HEADERS[1]
_PACKED_SIZE = _PACKED_HEADER.size
ALIGN = 8
_PADS = [b"\0" * k for k in range(ALIGN)]


def pack_frames(messages: Sequence[Sequence[Buffer]]) -> list[Buffer]:
    """One packed ZeroMQ message from several messages' frames (as ``encode_frames`` gives)."""
    pieces: list[Buffer] = []
    for frame in itertools.chain.from_iterable(messages):
        pieces.append(frame)
        pad = -len(frame) % ALIGN  # every piece before this one ended on a boundary
        if pad:
            pieces.append(_PADS[pad])
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


#: One inner message: id, frame 0 as (start, end), every declared part as (offset, length).
Entry: TypeAlias = tuple[int, int, int, list[tuple[int, int]]]


def _header_fault(number: int, start: int, magic: bytes, version: int, msg_id: int,
                  nparts: int) -> ProtocolError:
    where = f"packed message {number} (byte {start})"
    if magic != MAGIC or version != ZMQ_FRAMING_VERSION:
        return ProtocolError(
            f"{where}: frame 0 magic/version {bytes(magic)!r}/{version} are not "
            f"{MAGIC!r}/{ZMQ_FRAMING_VERSION}"
        )
    if msg_id == PACKED_ID:
        return ProtocolError(f"{where}: a packed message cannot hold another one")
    return ProtocolError(f"{where}: frame 0 declares {nparts} payload frames")


def walk_packed(body: Buffer) -> tuple[list[Entry], ProtocolError | None]:
    """Locate each inner message of a packed frame (offsets only, nothing copied).

    Returns the messages up to the first structural fault and that fault (or
    None): a message after a broken one cannot be located, while the ones
    before it are intact and are kept.
    """
    out: list[Entry] = []
    off, end = 0, len(body)
    fixed, mask = _FIXED.size, ALIGN - 1
    unpack_fixed = _FIXED.unpack_from
    while off < end:
        start = off
        if end - off < fixed:
            return out, ProtocolError(
                f"packed message {len(out)} (byte {start}): {end - off} bytes left, "
                "less than a frame 0"
            )
        magic, version, msg_id, nparts = unpack_fixed(body, off)
        if (magic != MAGIC or version != ZMQ_FRAMING_VERSION or msg_id == PACKED_ID
                or nparts > MAX_PARTS):
            return out, _header_fault(len(out), start, magic, version, msg_id, nparts)
        head_end = off + fixed + 8 * nparts
        if head_end > end:
            return out, ProtocolError(
                f"packed message {len(out)} (byte {start}): frame 0 runs past the end "
                "of the packed frame"
            )
        off = (head_end + mask) & ~mask
        parts: list[tuple[int, int]] = []
        for n in _LENGTHS[nparts].unpack_from(body, start + fixed):
            parts.append((off, n))
            if n:
                if off + n > end:
                    return out, ProtocolError(
                        f"packed message {len(out)} (byte {start}): a {n}-byte part runs "
                        "past the end of the packed frame"
                    )
                off = (off + n + mask) & ~mask
        out.append((msg_id, start, head_end, parts))
    return out, None


def _frames_of(body: memoryview, entry: Entry) -> list[memoryview]:
    """An inner message's frames as ``encode_frames`` gave them (views)."""
    _, start, head_end, parts = entry
    return [body[start:head_end], *[body[o:o + n] for o, n in parts if n]]


def unpack_frames(body: memoryview) -> tuple[list[list[memoryview]], ProtocolError | None]:
    """Split a packed frame into each message's frames (views), up to any fault."""
    entries, fault = walk_packed(body)
    return [_frames_of(body, e) for e in entries], fault


def split_message(frames: Sequence[Any]) -> tuple[list[Sequence[Any]], ProtocolError | None]:
    """The messages one received ZeroMQ message carries (as frames), and a fault or None.

    A plain message is returned as itself; a packed one as its inner
    messages (up to any fault). Each still has to go through ``decode_frames``.
    """
    try:
        body = packed_body(frames)
    except ProtocolError as exc:
        return [], exc
    if body is None:
        return [frames], None
    inner, fault = unpack_frames(body)
    return list(inner), fault


Decoded: TypeAlias = "WireMessage | ProtocolError"


def decode_message(frames: Sequence[Any]) -> tuple[list[Decoded], ProtocolError | None]:
    """Decode every MRD message one received ZeroMQ message carries.

    Returns the messages in order, each decoded or, where it does not decode,
    its ProtocolError in its place (``UnknownMessageError`` for a sound frame
    with an unknown id), plus a structural fault that ended a packed frame
    early, or None. Readouts in a packed frame are decoded straight from their
    offsets; everything else goes through ``decode_frames``.
    """
    try:
        body = packed_body(frames)
    except ProtocolError as exc:
        return [], exc
    if body is None:
        try:
            return [decode_frames(frames)], None
        except ProtocolError as exc:
            return [exc], None
    entries, fault = walk_packed(body)
    out: list[Decoded] = []
    for entry in entries:
        try:
            if entry[0] == _ACQ_ID and len(entry[3]) == 3:
                out.append(decode_acquisition_at(body, entry[3]))
            else:
                out.append(decode_frames(_frames_of(body, entry)))
        except ProtocolError as exc:
            out.append(exc)
    return out, fault
