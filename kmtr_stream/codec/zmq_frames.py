"""ZeroMQ framing: one multipart message per MRD message.

Frame 0 is a small fixed header, little-endian::

    magic    4s   b"KMTR"
    version  u16  ZMQ_FRAMING_VERSION
    msg_id   u16  MRD message id
    nparts   u16  number of payload frames that follow
    lengths  nparts x u64, the byte length of each payload frame

The payload parts of ``codec.parts`` (e.g. for an acquisition: header,
trajectory, data) follow in order, each its own frame so that arrays go out
with ``send_multipart(copy=False)`` and come back as ``np.frombuffer`` views
over the received frame buffers, without copies. A part of length 0 (e.g. the
trajectory of a readout without one) is listed in frame 0 but sent as no
frame at all: the frames that follow are exactly the parts with a non-zero
length, in order (since framing version 2; version 1 sent empty frames).
Version 3 adds packed messages (id 0, see ``codec.zmq_packed``): several
messages in one frame, for bursts.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import ismrmrd
import zmq

from kmtr_stream.codec.parts import (
    PART_COUNT,
    Buffer,
    acquisition_parts,
    decode_acquisition,
    decode_parts,
    encode_parts,
    known_id,
)
from kmtr_stream.errors import ProtocolError
from kmtr_stream.messages import WireMessage

MAGIC = b"KMTR"
ZMQ_FRAMING_VERSION = 3
_FIXED = struct.Struct("<4sHHH")
#: More payload frames than any message type has; bounds the header size.
MAX_PARTS = 16
_LENGTHS = [struct.Struct(f"<{n}Q") for n in range(MAX_PARTS + 1)]
_HEADERS = [struct.Struct(f"<4sHHH{n}Q") for n in range(MAX_PARTS + 1)]
_ACQ_HEADER = _HEADERS[3]
_ACQ_ID = 1008  # MessageId.ACQUISITION, as a plain int for the hot path
_Acquisition = ismrmrd.Acquisition
# zmq.Frame (recv_multipart(copy=False)) exposes its memory as .buffer.
_Frame = zmq.Frame


def frame_header(msg_id: int, lengths: Sequence[int]) -> bytes:
    """Frame 0 for a message with the given payload frame lengths."""
    n = len(lengths)
    return _HEADERS[n].pack(MAGIC, ZMQ_FRAMING_VERSION, msg_id, n, *lengths)


def encode_frames(msg: WireMessage) -> list[Buffer]:
    """Frames of one message: frame 0 header, then the non-empty payload parts (zero-copy views)."""
    if type(msg) is _Acquisition:  # the hot path: one readout
        head, traj, data = acquisition_parts(msg)
        nt = len(traj)
        h0 = _ACQ_HEADER.pack(MAGIC, ZMQ_FRAMING_VERSION, _ACQ_ID, 3, len(head), nt, len(data))
        return [h0, head, traj, data] if nt else [h0, head, data]
    msg_id, parts = encode_parts(msg)
    lengths = [len(p) for p in parts]
    n = len(lengths)
    head = _HEADERS[n].pack(MAGIC, ZMQ_FRAMING_VERSION, msg_id, n, *lengths)
    if 0 in lengths:
        return [head, *[p for p, k in zip(parts, lengths, strict=True) if k]]
    return [head, *parts]


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
    ISMRMRD header implies. Parts that frame 0 lists with length 0 have no
    frame; they are decoded as ``b""``.

    Raises:
        ProtocolError: anything about the frames is inconsistent; for an
            unknown message id the message reads "unknown message id N".
    """
    if not frames:
        raise ProtocolError("empty multipart message")
    nf = len(frames)
    if (nf == 3 or nf == 4) and len(frames[0]) == _ACQ_HEADER.size:
        # The hot path: one readout. zmq.Frame exports the buffer protocol, so
        # struct, ctypes and np.frombuffer read the frames without .buffer views.
        magic, version, msg_id, nparts, nh, nt, nd = _ACQ_HEADER.unpack_from(frames[0])
        if (
            msg_id == _ACQ_ID
            and nparts == 3
            and magic == MAGIC
            and version == ZMQ_FRAMING_VERSION
            and nf == (4 if nt else 3)
            and len(frames[1]) == nh
            and len(frames[-1]) == nd
            and (not nt or len(frames[2]) == nt)
        ):
            return decode_acquisition(frames[1], frames[2] if nt else b"", frames[-1])
    payload = [f.buffer if type(f) is _Frame else f for f in frames]
    msg_id, lengths = parse_frame_header(payload.pop(0))
    if msg_id not in PART_COUNT:
        known_id(msg_id)  # raises "unknown message id N"
    if 0 in lengths:
        nonempty = len(lengths) - lengths.count(0)
        if len(payload) != nonempty:
            raise ProtocolError(
                f"frame 0 declares {nonempty} non-empty payload frames, {len(payload)} arrived"
            )
        frames_in = iter(payload)
        payload = [next(frames_in) if n else b"" for n in lengths]
    elif len(payload) != len(lengths):
        raise ProtocolError(
            f"frame 0 declares {len(lengths)} payload frames, {len(payload)} arrived"
        )
    frame = 0
    for part, n in zip(payload, lengths, strict=True):
        if n:
            frame += 1
            if len(part) != n:
                raise ProtocolError(f"frame {frame} has {len(part)} bytes, frame 0 declares {n}")
    return decode_parts(msg_id, payload)
