"""decode(encode(m)) == m for every wire message type, in both framings."""

from __future__ import annotations

import ctypes
from typing import Any

import ismrmrd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmtr_stream.codec import decode_frames, decode_stream, encode_frames, encode_stream
from kmtr_stream.codec.parts import IMAGE_DTYPES
from kmtr_stream.errors import ProtocolError
from kmtr_stream.messages import (
    Close,
    ConfigFile,
    ConfigText,
    ErrorReport,
    Result,
    Text,
    XmlHeader,
)

SETTINGS = settings(max_examples=60, deadline=None)

#: MRD text is a C string: a NUL inside is refused both ways (test_codec_nul.py).
texts = st.text(max_size=200).filter(lambda s: "\0" not in s)
plain_leaf = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20)
)
plain = st.recursive(
    plain_leaf,
    lambda kids: st.lists(kids, max_size=4)
    | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


@st.composite
def acquisitions(draw: Any) -> ismrmrd.Acquisition:
    head = ismrmrd.AcquisitionHeader.from_buffer_copy(
        draw(st.binary(min_size=340, max_size=340))
    )
    ns, nc, nd = draw(st.integers(0, 40)), draw(st.integers(0, 5)), draw(st.integers(0, 3))
    head.number_of_samples, head.active_channels, head.trajectory_dimensions = ns, nc, nd
    data = np.frombuffer(draw(st.binary(min_size=ns * nc * 8, max_size=ns * nc * 8)), np.complex64)
    traj = np.frombuffer(draw(st.binary(min_size=ns * nd * 4, max_size=ns * nd * 4)), np.float32)
    return ismrmrd.Acquisition(head, data.reshape(nc, ns).copy(), traj.reshape(ns, nd).copy())


@st.composite
def images(draw: Any) -> ismrmrd.Image:
    head = ismrmrd.ImageHeader.from_buffer_copy(draw(st.binary(min_size=198, max_size=198)))
    data_type = draw(st.sampled_from(sorted(IMAGE_DTYPES)))
    dtype = IMAGE_DTYPES[data_type]
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 9)),
             draw(st.integers(0, 9)))
    n = int(np.prod(shape)) * dtype.itemsize
    data = np.frombuffer(draw(st.binary(min_size=n, max_size=n)), dtype).reshape(shape).copy()
    word = st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=8)
    meta = ismrmrd.Meta(draw(st.dictionaries(word, word | st.lists(word, min_size=2, max_size=3),
                                             max_size=3)))
    head.data_type = data_type
    return ismrmrd.Image(head, meta=meta, data=data)


@st.composite
def waveforms(draw: Any) -> ismrmrd.Waveform:
    head = ismrmrd.WaveformHeader.from_buffer_copy(draw(st.binary(min_size=40, max_size=40)))
    head.channels, head.number_of_samples = draw(st.integers(0, 4)), draw(st.integers(0, 30))
    n = head.channels * head.number_of_samples * 4
    return ismrmrd.Waveform(head, np.frombuffer(draw(st.binary(min_size=n, max_size=n)), "<u4"))


config_names = st.text(max_size=300).filter(
    lambda s: "\0" not in s and len(s.encode("utf-8")) < 1024
)
reports = st.builds(
    ErrorReport, code=st.text(max_size=20), message=st.text(max_size=200),
    gadget=st.none() | st.text(max_size=20), message_index=st.none() | st.integers(0, 2**40),
    context=st.dictionaries(st.text(max_size=8), plain, max_size=4),
)
results = st.builds(
    Result, kind=st.text(max_size=20),
    body=st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("kind", "schema_version")),
                         plain, max_size=5),
)
messages = st.one_of(
    st.builds(ConfigFile, config_names), st.builds(ConfigText, texts), st.builds(XmlHeader, texts),
    st.just(Close()), st.builds(Text, texts), reports, results,
    acquisitions(), images(), waveforms(),
)


def raw(obj: Any) -> bytes:
    """Bytes of a ctypes header or array, for NaN-safe comparison."""
    if isinstance(obj, np.ndarray):
        return np.ascontiguousarray(obj).tobytes()
    return bytes(obj)


def assert_same(a: Any, b: Any) -> None:
    """Equality that treats headers and arrays bit-wise (random bytes include NaNs)."""
    assert type(a) is type(b)
    if isinstance(a, ismrmrd.Acquisition):
        assert raw(a._head) == raw(b._head)
        assert raw(a.data) == raw(b.data) and a.data.shape == b.data.shape
        assert raw(a.traj) == raw(b.traj) and a.traj.shape == b.traj.shape
    elif isinstance(a, ismrmrd.Image):
        assert raw(a._head) == raw(b._head)
        assert a.data.dtype == b.data.dtype and a.data.shape == b.data.shape
        assert raw(a.data) == raw(b.data)
        assert a.attribute_string == b.attribute_string
    elif isinstance(a, ismrmrd.Waveform):
        assert raw(a._head) == raw(b._head)
        assert raw(a.data) == raw(b.data) and a.data.shape == b.data.shape
    else:
        assert a == b


@SETTINGS
@given(st.lists(messages, min_size=1, max_size=4), st.booleans())
def test_stream_roundtrip(msgs: list[Any], text_nul: bool) -> None:
    wire = b"".join(encode_stream(m, text_nul) for m in msgs)
    back = decode_stream(wire)
    assert len(back) == len(msgs)
    for a, b in zip(msgs, back, strict=True):
        assert_same(a, b)


@SETTINGS
@given(messages)
def test_zmq_roundtrip(msg: Any) -> None:
    frames = [bytes(f) for f in encode_frames(msg)]
    assert_same(msg, decode_frames(frames))


def test_header_sizes_come_from_ismrmrd() -> None:
    assert ctypes.sizeof(ismrmrd.AcquisitionHeader) == 340
    assert ctypes.sizeof(ismrmrd.ImageHeader) == 198


def test_acquisition_frames_are_zero_copy_views() -> None:
    data = np.arange(8 * 256, dtype=np.float32).view(np.complex64).reshape(8, 128)
    acq = ismrmrd.Acquisition.from_array(data)
    frames = encode_frames(acq)
    # No trajectory: its empty part is listed in frame 0 but sent as no frame.
    assert len(frames) == 3 and len(frames[2]) == data.nbytes
    assert isinstance(frames[2], memoryview)
    assert np.shares_memory(np.frombuffer(frames[2], np.uint8), acq.data)


def test_numpy_values_in_results_are_converted() -> None:
    body = {"lvef": np.float32(55.5), "n": np.int64(3), "v": np.arange(3, dtype=np.int16)}
    back = decode_frames([bytes(f) for f in encode_frames(Result("slice", body))])
    assert back == Result("slice", {"lvef": 55.5, "n": 3, "v": [0, 1, 2]})


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"z": np.complex64(1j)}, "complex"),
        ({"z": np.zeros(2, np.complex64)}, "complex64"),
        ({"o": object()}, "object"),
        ({"kind": 1}, "reserved"),
        ({"d": {1: 2}}, "not a str"),
    ],
)
def test_unencodable_results_are_rejected_clearly(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(ProtocolError, match=needle):
        encode_frames(Result("slice", body))


def test_config_file_name_too_long_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="1024"):
        encode_stream(ConfigFile("x" * 1024))
