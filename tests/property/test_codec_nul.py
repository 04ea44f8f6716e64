"""NUL-terminated text, as python-ismrmrd-server and Gadgetron write it, in both directions."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmtr_stream.codec import (
    StreamReader,
    decode_frames,
    decode_parts,
    decode_stream,
    encode_stream,
)
from kmtr_stream.codec.zmq_frames import encode_frames
from kmtr_stream.errors import ProtocolError
from kmtr_stream.messages import Close, ConfigFile, ConfigText, MessageId, Text, XmlHeader
from tests.property.test_codec_roundtrip import texts

TEXT_TYPES = {2: ConfigText, 3: XmlHeader, 5: Text}


def framed(mid: int, payload: bytes) -> bytes:
    return struct.pack("<HI", mid, len(payload)) + payload


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(TEXT_TYPES)), texts, st.integers(1, 3))
def test_trailing_nuls_are_dropped(mid: int, text: str, nuls: int) -> None:
    cls = TEXT_TYPES[mid]
    assert decode_stream(framed(mid, text.encode() + b"\0" * nuls)) == [cls(text)]


@pytest.mark.parametrize("mid", sorted(TEXT_TYPES))
def test_nul_dialect_is_what_the_reference_clients_send(mid: int) -> None:
    msg = TEXT_TYPES[mid]("<a>é</a>")
    # python-ismrmrd-server: '%s\0' % contents, the length counting the NUL.
    assert encode_stream(msg, text_nul=True) == framed(mid, "<a>é</a>\0".encode())
    assert encode_stream(msg) == framed(mid, "<a>é</a>".encode())  # ismrmrd.serialization


def test_reader_tells_which_dialect_the_peer_speaks() -> None:
    for nul in (True, False):
        wire = encode_stream(XmlHeader("<x/>"), text_nul=nul) + encode_stream(Close())
        reader = StreamReader.from_file(io.BytesIO(wire))
        assert reader.text_nul is None
        assert list(reader) == [XmlHeader("<x/>"), Close()]
        assert reader.text_nul is nul


def test_text_after_a_nul_is_refused_naming_the_byte() -> None:
    with pytest.raises(ProtocolError, match="TEXT has a NUL at byte 2 followed by more text"):
        decode_stream(framed(5, b"ab\0cd\0"))


@pytest.mark.parametrize("msg", [Text("a\0b"), XmlHeader("\0"), ConfigText("x\0")])
def test_text_with_a_nul_is_not_sent(msg: object) -> None:
    with pytest.raises(ProtocolError, match="contains a NUL character"):
        encode_stream(msg)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="contains a NUL character"):
        encode_frames(msg)  # type: ignore[arg-type]


def test_payload_parts_accept_a_terminating_nul_in_either_framing() -> None:
    # ZeroMQ frames carry the same parts, so a NUL-terminated part decodes alike.
    assert decode_parts(MessageId.TEXT, [b"hi\0"]) == Text("hi")
    assert decode_frames([bytes(f) for f in encode_frames(Text("hi"))]) == Text("hi")


def test_config_file_name_ends_at_its_first_nul() -> None:
    raw = struct.pack("<H", 1) + b"kmtr.xml\0garbage".ljust(1024, b"\0")
    assert decode_stream(raw) == [ConfigFile("kmtr.xml")]
