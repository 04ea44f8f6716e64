"""The MRD byte stream is bit-exact with ismrmrd.serialization, in both directions."""

from __future__ import annotations

import io
from typing import Any

import ismrmrd
from hypothesis import given, settings
from hypothesis import strategies as st
from ismrmrd import serialization as ser

from kmtr_stream.codec import StreamReader, decode_stream, encode_stream
from kmtr_stream.messages import Close, ConfigFile, ConfigText, Text, XmlHeader
from tests.property.test_codec_roundtrip import (
    acquisitions,
    assert_same,
    config_names,
    images,
    texts,
    waveforms,
)

SETTINGS = settings(max_examples=60, deadline=None)


def reference_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    ser.ProtocolSerializer(buf).serialize(obj)
    return buf.getvalue()


def reference_close() -> bytes:
    buf = io.BytesIO()
    ser.ProtocolSerializer(buf).close()
    return buf.getvalue()


@SETTINGS
@given(st.one_of(acquisitions(), images(), waveforms()))
def test_ismrmrd_payloads_bit_exact(msg: Any) -> None:
    ours = encode_stream(msg)
    assert ours == reference_bytes(msg)
    back = list(ser.ProtocolDeserializer(io.BytesIO(ours + reference_close())).deserialize())
    assert len(back) == 1
    assert_same(msg, back[0])
    assert_same(msg, decode_stream(reference_bytes(msg))[0])


@SETTINGS
@given(texts, config_names)
def test_control_messages_bit_exact(text: str, name: str) -> None:
    assert encode_stream(Text(text)) == reference_bytes(text)
    assert encode_stream(ConfigText(text)) == reference_bytes(ser.ConfigText(text))
    assert encode_stream(ConfigFile(name)) == reference_bytes(ser.ConfigFile(name))
    assert encode_stream(Close()) == reference_close()
    assert decode_stream(reference_bytes(ser.ConfigFile(name))) == [ConfigFile(name)]
    assert decode_stream(reference_bytes(text)) == [Text(text)]


def test_xml_header_bit_exact() -> None:
    header = ismrmrd.xsd.ismrmrdHeader(
        experimentalConditions=ismrmrd.xsd.experimentalConditionsType(
            H1resonanceFrequency_Hz=63_500_000
        ),
        encoding=[],
    )
    xml = header.toXML()
    assert encode_stream(XmlHeader(xml)) == reference_bytes(header)
    reader = StreamReader.from_file(io.BytesIO(reference_bytes(header) + reference_close()))
    msgs = list(reader)
    assert msgs == [XmlHeader(xml), Close()]
    assert ismrmrd.xsd.CreateFromDocument(msgs[0].xml) == header
