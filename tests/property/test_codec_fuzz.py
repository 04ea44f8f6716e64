"""Random bytes, truncations and corruptions only ever raise ProtocolError."""

from __future__ import annotations

import struct
from typing import Any

import ismrmrd
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmtr_stream.codec import decode_frames, decode_stream, encode_frames, encode_stream
from kmtr_stream.codec.zmq_frames import frame_header
from kmtr_stream.errors import ProtocolError
from kmtr_stream.messages import MessageId, XmlHeader
from tests.property.test_codec_roundtrip import messages

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KNOWN_IDS = [int(m) for m in MessageId]


def decode_or_protocol_error(fn: Any, arg: Any) -> None:
    try:
        fn(arg)
    except ProtocolError:
        pass


@SETTINGS
@given(st.binary(max_size=600))
def test_random_stream_bytes(data: bytes) -> None:
    decode_or_protocol_error(decode_stream, data)


@SETTINGS
@given(st.sampled_from(KNOWN_IDS), st.binary(max_size=600))
def test_random_payload_after_known_id(msg_id: int, payload: bytes) -> None:
    decode_or_protocol_error(decode_stream, struct.pack("<H", msg_id) + payload)


@SETTINGS
@given(st.sampled_from(KNOWN_IDS), st.lists(st.binary(max_size=400), max_size=4))
def test_random_frames_after_valid_frame0(msg_id: int, parts: list[bytes]) -> None:
    frames = [frame_header(msg_id, [len(p) for p in parts]), *parts]
    decode_or_protocol_error(decode_frames, frames)


@SETTINGS
@given(st.lists(st.binary(max_size=100), max_size=5))
def test_random_frames(frames: list[bytes]) -> None:
    decode_or_protocol_error(decode_frames, frames)


@SETTINGS
@given(messages, st.data())
def test_truncated_stream_encoding(msg: Any, data: Any) -> None:
    wire = encode_stream(msg)
    cut = data.draw(st.integers(1, len(wire) - 1)) if len(wire) > 1 else 1
    with pytest.raises(ProtocolError, match="truncated"):
        decode_stream(wire[:cut])


@SETTINGS
@given(messages, st.data())
def test_corrupted_stream_encoding(msg: Any, data: Any) -> None:
    wire = bytearray(encode_stream(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(wire) - 1))
        wire[i] = data.draw(st.integers(0, 255))
    decode_or_protocol_error(decode_stream, bytes(wire))


@SETTINGS
@given(messages, st.data())
def test_truncated_or_damaged_frames(msg: Any, data: Any) -> None:
    frames = [bytes(f) for f in encode_frames(msg)]
    i = data.draw(st.integers(0, len(frames) - 1))
    how = data.draw(st.sampled_from(["cut", "grow", "drop", "flip"]))
    if how == "cut" and frames[i]:
        frames[i] = frames[i][: data.draw(st.integers(0, len(frames[i]) - 1))]
    elif how == "grow":
        frames[i] = frames[i] + b"\0"
    elif how == "drop":
        del frames[i]
    elif frames[i]:
        j = data.draw(st.integers(0, len(frames[i]) - 1))
        frames[i] = frames[i][:j] + bytes([frames[i][j] ^ 0xFF]) + frames[i][j + 1:]
    decode_or_protocol_error(decode_frames, frames)


def test_unknown_message_id_is_named() -> None:
    with pytest.raises(ProtocolError, match="unknown message id 1234"):
        decode_stream(struct.pack("<H", 1234) + b"\0" * 16)
    with pytest.raises(ProtocolError, match="unknown message id 1234"):
        decode_frames([frame_header(1234, [])])


def test_header_data_size_mismatch_in_frames() -> None:
    acq = ismrmrd.Acquisition.from_array(np.zeros((4, 32), np.complex64))
    head, data = (bytes(f) for f in encode_frames(acq)[1:])
    traj = b""
    # frame 0 agrees with the frames, but the data is one readout short of the header.
    frames = [frame_header(1008, [340, 0, len(data) - 8]), head, data[:-8]]
    with pytest.raises(ProtocolError, match="samples x channels x 8"):
        decode_frames(frames)
    frames = [frame_header(1008, [340, 0, len(data)]), head, data[:-8]]
    with pytest.raises(ProtocolError, match="frame 2 has"):
        decode_frames(frames)
    # A part that frame 0 lists as empty has no frame (framing version 2).
    frames = [frame_header(1008, [340, 0, len(data)]), head, traj, data]
    with pytest.raises(ProtocolError, match="2 non-empty payload frames, 3 arrived"):
        decode_frames(frames)


def test_absurd_sizes_are_capped() -> None:
    with pytest.raises(ProtocolError, match="limit"):
        decode_stream(struct.pack("<HI", 5, 0xFFFFFFFF))
    img = ismrmrd.ImageHeader()
    img.data_type, img.channels, img.matrix_size[:] = ismrmrd.DATATYPE_CXDOUBLE, 60000, (
        60000, 60000, 1)
    with pytest.raises(ProtocolError, match="limit"):
        decode_stream(struct.pack("<H", 1022) + bytes(img))


def test_invalid_utf8_and_msgpack() -> None:
    with pytest.raises(ProtocolError, match="UTF-8"):
        decode_stream(struct.pack("<HI", 3, 2) + b"\xff\xfe")
    with pytest.raises(ProtocolError, match="msgpack"):
        decode_stream(struct.pack("<HI", 1500, 1) + b"\xc1")
    with pytest.raises(ProtocolError, match="schema_version"):
        decode_stream(struct.pack("<HI", 1500, 1) + b"\x80")
    assert decode_stream(encode_stream(XmlHeader("<a/>"))) == [XmlHeader("<a/>")]
