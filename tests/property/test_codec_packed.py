"""Packed ZeroMQ messages: round trips, alignment, and faults that keep what was valid."""

from __future__ import annotations

import struct
from typing import Any

import ismrmrd
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmtr_stream.codec import decode_frames, encode_frames
from kmtr_stream.codec.zmq_frames import frame_header
from kmtr_stream.codec.zmq_packed import (
    ALIGN,
    PACKED_ID,
    decode_message,
    pack_frames,
    split_message,
)
from kmtr_stream.errors import ProtocolError
from kmtr_stream.messages import Text
from tests.property.test_codec_roundtrip import assert_same, messages

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_all(frames: list[Any]) -> tuple[list[Any], ProtocolError | None]:
    inner, fault = split_message(frames)
    return [decode_frames(m) for m in inner], fault


@SETTINGS
@given(st.lists(messages, min_size=1, max_size=6))
def test_packed_roundtrip(msgs: list[Any]) -> None:
    frames = [bytes(f) for f in pack_frames([encode_frames(m) for m in msgs])]
    assert len(frames) == 2
    back, fault = decode_all(frames)
    assert fault is None
    assert len(back) == len(msgs)
    for a, b in zip(msgs, back, strict=True):
        assert_same(a, b)
    fused, fault = decode_message(frames)  # readouts decoded straight from their offsets
    assert fault is None and len(fused) == len(msgs)
    for a, b in zip(msgs, fused, strict=True):
        assert_same(a, b)


@SETTINGS
@given(messages)
def test_plain_message_passes_through_split(msg: Any) -> None:
    frames = [bytes(f) for f in encode_frames(msg)]
    inner, fault = split_message(frames)
    assert fault is None and inner == [frames]


def readout(i: int, coils: int = 3, samples: int = 7) -> ismrmrd.Acquisition:
    data = (np.arange(coils * samples) + 1j * i).astype(np.complex64).reshape(coils, samples)
    acq = ismrmrd.Acquisition.from_array(data)
    acq.scan_counter = i
    return acq


def test_arrays_decode_in_place_and_aligned() -> None:
    acqs = [readout(i) for i in range(4)]
    head, body = pack_frames([encode_frames(a) for a in acqs])
    assert len(body) % ALIGN == 0
    back, _ = decode_all([head, body])
    base = np.frombuffer(body, np.uint8).ctypes.data
    for a, b in zip(acqs, back, strict=True):
        assert b.data.flags.aligned and (b.data.ctypes.data - base) % ALIGN == 0
        assert not b.data.flags.owndata  # a view into the packed frame, not a copy
        np.testing.assert_array_equal(a.data, b.data)
        assert b.scan_counter == a.scan_counter


def packed(body: bytes) -> list[bytes]:
    return [frame_header(PACKED_ID, [len(body)]), body]


def test_truncated_packed_frame_keeps_the_messages_before_the_cut() -> None:
    acqs = [readout(i) for i in range(3)]
    _, body = pack_frames([encode_frames(a) for a in acqs])
    one = len(pack_frames([encode_frames(acqs[0])])[1])
    back, fault = decode_all(packed(bytes(body)[: 2 * one + 40]))
    assert [b.scan_counter for b in back] == [0, 1]
    assert isinstance(fault, ProtocolError) and "packed message 2" in str(fault)


def test_bad_inner_message_is_reported_in_its_place() -> None:
    good = encode_frames(readout(0))
    bad_head = frame_header(1008, [340, 0, 16])  # a readout whose data length lies
    bad = [bad_head, b"\0" * 340, b"\0" * 16]
    inner, fault = split_message(pack_frames([good, bad, encode_frames(Text("after"))]))
    assert fault is None and len(inner) == 3
    assert decode_frames(inner[0]).scan_counter == 0
    try:
        decode_frames(inner[1])
    except ProtocolError as exc:
        assert "acquisition" in str(exc)
    else:
        raise AssertionError("the inconsistent readout decoded")
    assert decode_frames(inner[2]) == Text("after")


def test_packed_message_inside_packed_message_is_refused() -> None:
    nested = pack_frames([pack_frames([encode_frames(Text("x"))])])
    _, fault = split_message(nested)
    assert fault is not None and "cannot hold another" in str(fault)


def test_packed_length_mismatch_and_extra_frames() -> None:
    head, body = pack_frames([encode_frames(Text("x")), encode_frames(Text("y"))])
    inner, fault = split_message([head, bytes(body)[:-1]])
    assert not inner and fault is not None and "declares" in str(fault)
    inner, fault = split_message([head, body, b"extra"])
    assert not inner and fault is not None and "payload frames" in str(fault)


@SETTINGS
@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_corrupted_packed_frame_only_raises_protocol_error(msgs: list[Any], data: Any) -> None:
    head, body = pack_frames([encode_frames(m) for m in msgs])
    buf = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    frames = [head[:-8] + struct.pack("<Q", cut), bytes(buf[:cut])]
    check_split_and_fused_agree(frames)


def check_split_and_fused_agree(frames: list[bytes]) -> None:
    """Whatever the bytes, only ProtocolErrors, and both decoders say the same."""
    inner, fault = split_message(frames)
    assert fault is None or isinstance(fault, ProtocolError)
    expected: list[Any] = []
    for m in inner:
        try:
            expected.append(decode_frames(m))
        except ProtocolError as exc:
            expected.append(exc)
    fused, fused_fault = decode_message(frames)
    assert str(fused_fault) == str(fault)
    assert len(fused) == len(expected)
    for a, b in zip(expected, fused, strict=False):
        if isinstance(a, ProtocolError):
            assert type(b) is type(a) and str(b) == str(a)
        else:
            assert_same(a, b)


@SETTINGS
@given(st.binary(max_size=600))
def test_random_packed_body_only_raises_protocol_error(body: bytes) -> None:
    check_split_and_fused_agree(packed(body))
