"""ZeroMQ framing: one multipart message per MRD message.

Frame 0 is a small fixed header, little-endian::

    magic    4s   b"KMTR"
    version  u16  ZMQ_FRAMING_VERSION
    msg_id   u16  MRD message id
    nparts   u16  number of payload frames that follow
    lengths  nparts x u64, the byte length of each payload frame

Frames 1..nparts are the payload parts of ``codec.parts`` (e.g. for an
acquisition: header, trajectory, data), each its own frame so that arrays go
out with ``send_multipart(copy=False)`` and come back as ``np.frombuffer``
views over the received frame buffers, without copies.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import zmq

from kmtr_stream.codec.parts import PART_COUNT, Buffer, decode_parts, encode_parts, known_id
from kmtr_stream.errors import ProtocolError
from kmtr_stream.messages import WireMessage

MAGIC = b"KMTR"
ZMQ_FRAMING_VERSION = 1
_FIXED = struct.Struct("<4sHHH")
#: More payload frames than any message type has; bounds the header size.
MAX_PARTS = 16
_LENGTHS = [struct.Struct(f"<{n}Q") for n in range(MAX_PARTS + 1)]
_HEADERS = [struct.Struct(f"<4sHHH{n}Q") for n in range(MAX_PARTS + 1)]
# zmq.Frame (recv_multipart(copy=False)) exposes its memory as .buffer.
_Frame = zmq.Frame


def frame_header(msg_id: int, lengths: Sequence[int]) -> bytes:
    """Frame 0 for a message with the given payload frame lengths."""
    n = len(lengths)
    return _HEADERS[n].pack(MAGIC, ZMQ_FRAMING_VERSION, msg_id, n, *lengths)


def encode_frames(msg: WireMessage) -> list[Buffer]:
    """Frames of one message: frame 0 header, then the payload parts (zero-copy views)."""
    msg_id, parts = encode_parts(msg)
    return [frame_header(msg_id, [len(p) for p in parts]), *parts]


def parse_frame_header(frame0: Buffer) -> tuple[int, tuple[int, ...]]:
    """``(msg_id, payload lengths)`` from frame 0, checking magic, version and size."""
    n0 = len(frame0)
    if n0 < _FIXED.size:
        raise ProtocolError(f"frame 0 has {n0} bytes, shorter than the {_FIXED.size}-byte header")
    magic, version, msg_id, nparts = _FIXED.unpack_from(frame0)
    if magic != MAGIC:
        raise ProtocolError(f"frame 0 magic is {bytes(magic)!r}, expected {MAGIC!r}")
    if version != ZMQ_FRAMING_VERSION:
        raise ProtocolError(
            f"ZeroMQ framing version {version} is not supported (expected {ZMQ_FRAMING_VERSION})"
        )
    if nparts > MAX_PARTS:
        raise ProtocolError(f"frame 0 declares {nparts} payload frames (at most {MAX_PARTS})")
    expect = _FIXED.size + 8 * nparts
    if n0 != expect:
        raise ProtocolError(
            f"frame 0 has {n0} bytes, expected {expect} for {nparts} payload frames"
        )
    return msg_id, _LENGTHS[nparts].unpack_from(frame0, _FIXED.size)


def decode_frames(frames: Sequence[Any]) -> WireMessage:
    """Decode one multipart message (``bytes`` or ``zmq.Frame`` items).

    Checks magic, version, the frame count and every payload frame's length
    against frame 0, then (in ``decode_parts``) against what the message's
    ISMRMRD header implies.

    Raises:
        ProtocolError: anything about the frames is inconsistent; for an
            unknown message id the message reads "unknown message id N".
    """
    if not frames:
        raise ProtocolError("empty multipart message")
    payload = [f.buffer if type(f) is _Frame else f for f in frames]
    msg_id, lengths = parse_frame_header(payload.pop(0))
    if msg_id not in PART_COUNT:
        known_id(msg_id)  # raises "unknown message id N"
    if len(payload) != len(lengths):
        raise ProtocolError(
            f"frame 0 declares {len(lengths)} payload frames, {len(payload)} arrived"
        )
    for i, (part, n) in enumerate(zip(payload, lengths, strict=True), start=1):
        if len(part) != n:
            raise ProtocolError(f"frame {i} has {len(part)} bytes, frame 0 declares {n}")
    return decode_parts(msg_id, payload)
