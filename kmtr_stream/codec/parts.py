"""Wire messages <-> their payload parts, shared by both framings.

Every message is an MRD message id plus an ordered list of payload parts:

=================  ==========================================================
message (id)       parts
=================  ==========================================================
ConfigFile (1)     the 1024-byte NUL-padded name
ConfigText (2)     UTF-8 text (*)
XmlHeader (3)      UTF-8 XML (*)
Close (4)          none
Text (5)           UTF-8 text (*)
ErrorReport (8)    msgpack map (see ``codec.maps``)
Acquisition(1008)  340-byte AcquisitionHeader, trajectory ``(samples, dims)``
                   float32, data ``(channels, samples)`` complex64
Image (1022)       198-byte ImageHeader, attribute string (UTF-8 XML),
                   data ``(channels, z, y, x)``
Waveform (1026)    40-byte WaveformHeader, data ``(channels, samples)`` uint32
Result (1500)      msgpack map (see ``codec.maps``)
=================  ==========================================================

(*) Decoding accepts a trailing NUL terminator (python-ismrmrd-server and
Gadgetron count one in the length) and drops it; text containing a NUL
elsewhere is refused both ways, since every MRD reader would cut it there.

The MRD/TCP byte stream adds the length prefixes (uint32 before single-part
text/msgpack payloads, uint64 before the image attribute string); ZeroMQ
carries each part as its own frame, with the lengths in frame 0.

Decoded arrays are ``np.frombuffer`` views over the received buffers (no
copy): depending on the transport they may be read-only, so gadgets must
build new arrays instead of writing into incoming ones.
"""

from __future__ import annotations

import ctypes
import math
import struct
from collections.abc import Sequence
from typing import Any

import ismrmrd
import numpy as np

from kmtr_stream.acquisition_fast import new_acquisition
from kmtr_stream.codec.maps import decode_error, decode_result, encode_error, encode_result
from kmtr_stream.errors import ProtocolError, UnknownMessageError
from kmtr_stream.messages import (
    Close,
    ConfigFile,
    ConfigText,
    ErrorReport,
    MessageId,
    Result,
    Text,
    WireMessage,
    XmlHeader,
)

Buffer = bytes | bytearray | memoryview

#: Largest payload (one message) accepted; larger declared sizes are hostile or corrupt.
MAX_MESSAGE_BYTES = 1 << 30
CONFIG_FILE_BYTES = 1024
ACQ_HEADER_BYTES = ctypes.sizeof(ismrmrd.AcquisitionHeader)
IMAGE_HEADER_BYTES = ctypes.sizeof(ismrmrd.ImageHeader)
WAVEFORM_HEADER_BYTES = ctypes.sizeof(ismrmrd.WaveformHeader)

#: MRD image data_type -> dtype. DATATYPE_INT (int32) is left out on purpose:
#: ismrmrd-python's Image stores it as int64 and would put 8 bytes per pixel on the wire.
IMAGE_DTYPES: dict[int, np.dtype] = {
    ismrmrd.DATATYPE_USHORT: np.dtype("<u2"),
    ismrmrd.DATATYPE_SHORT: np.dtype("<i2"),
    ismrmrd.DATATYPE_UINT: np.dtype("<u4"),
    ismrmrd.DATATYPE_FLOAT: np.dtype("<f4"),
    ismrmrd.DATATYPE_DOUBLE: np.dtype("<f8"),
    ismrmrd.DATATYPE_CXFLOAT: np.dtype("<c8"),
    ismrmrd.DATATYPE_CXDOUBLE: np.dtype("<c16"),
}

#: Ids whose single payload is preceded by a uint32 length in the MRD byte stream.
LENGTH_PREFIXED = frozenset(
    {MessageId.CONFIG_TEXT, MessageId.HEADER, MessageId.TEXT, MessageId.ERROR, MessageId.RESULT}
)
#: Number of payload parts per message id.
PART_COUNT: dict[int, int] = {
    MessageId.CONFIG_FILE: 1,
    MessageId.CONFIG_TEXT: 1,
    MessageId.HEADER: 1,
    MessageId.CLOSE: 0,
    MessageId.TEXT: 1,
    MessageId.ERROR: 1,
    MessageId.ACQUISITION: 3,
    MessageId.IMAGE: 3,
    MessageId.WAVEFORM: 2,
    MessageId.RESULT: 1,
}

_U64 = struct.Struct("<Q")
# Plain ints for hot-path comparisons (IntEnum member lookups cost a descriptor call each).
_ACQ = int(MessageId.ACQUISITION)
_C64 = np.dtype(np.complex64)
_F32 = np.dtype(np.float32)


def check_size(nbytes: int, what: str) -> int:
    """Return ``nbytes`` or raise ProtocolError when it exceeds MAX_MESSAGE_BYTES."""
    if nbytes > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"{what} declares {nbytes} bytes, more than the {MAX_MESSAGE_BYTES}-byte limit"
        )
    return nbytes


def known_id(msg_id: int) -> MessageId:
    """The MessageId for ``msg_id`` or UnknownMessageError("unknown message id N")."""
    if msg_id not in PART_COUNT:
        raise UnknownMessageError(f"unknown message id {msg_id}")
    return MessageId(msg_id)


def acquisition_sizes(head: ismrmrd.AcquisitionHeader) -> tuple[int, int]:
    """Byte sizes ``(trajectory, data)`` an acquisition header implies."""
    ns, nc, nd = head.number_of_samples, head.active_channels, head.trajectory_dimensions
    return check_size(ns * nd * 4, "acquisition trajectory"), check_size(
        ns * nc * 8, "acquisition data"
    )


def image_layout(head: ismrmrd.ImageHeader) -> tuple[np.dtype, tuple[int, int, int, int], int]:
    """dtype, shape ``(channels, z, y, x)`` and data byte size an image header implies."""
    dtype = IMAGE_DTYPES.get(head.data_type)
    if dtype is None:
        raise ProtocolError(f"image data_type {head.data_type} is not supported")
    x, y, z = head.matrix_size
    shape = (int(head.channels), int(z), int(y), int(x))
    # Python ints: 4 uint16 dimensions times 16 bytes overflow int64 (the product went negative).
    nbytes = check_size(math.prod(shape) * dtype.itemsize, "image data")
    return dtype, shape, nbytes


def waveform_size(head: ismrmrd.WaveformHeader) -> int:
    """Data byte size a waveform header implies."""
    return check_size(head.channels * head.number_of_samples * 4, "waveform data")


def _utf8(text: str, what: str) -> bytes:
    try:
        raw = text.encode("utf-8")
    except (UnicodeEncodeError, AttributeError) as exc:
        raise ProtocolError(f"{what} is not encodable as UTF-8: {exc}") from None
    if b"\0" in raw:
        # MRD text is a C string: every reader would cut it at the NUL.
        raise ProtocolError(f"{what} contains a NUL character at byte {raw.index(0)}")
    return raw


def _text(part: Buffer, what: str) -> str:
    """UTF-8 text of a payload, without the NUL terminator(s) MRD senders may count in."""
    raw = bytes(part).rstrip(b"\0")
    if b"\0" in raw:
        raise ProtocolError(
            f"{what} has a NUL at byte {raw.index(0)} followed by more text "
            "(MRD text ends at its NUL terminator)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what} is not valid UTF-8 (byte {exc.start})") from None


def _raw(arr: Any) -> Buffer:
    """Flat byte view of an array: no copy when it is C-contiguous; ``b""`` when empty."""
    if not arr.size:
        return b""
    if arr.flags.c_contiguous:
        return memoryview(arr).cast("B")
    flat: Any = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    return memoryview(flat)


def encode_parts(msg: WireMessage) -> tuple[int, list[Buffer]]:
    """Split a wire message into its message id and payload parts (no length prefixes).

    Array parts are zero-copy memoryviews over the message's own arrays when
    they are C-contiguous and of the wire dtype.

    Raises:
        ProtocolError: the message cannot be encoded (wrong type, shape or size).
    """
    if isinstance(msg, ismrmrd.Acquisition):
        return MessageId.ACQUISITION, acquisition_parts(msg)
    if isinstance(msg, Result):
        return MessageId.RESULT, [encode_result(msg)]
    if isinstance(msg, ErrorReport):
        return MessageId.ERROR, [encode_error(msg)]
    if isinstance(msg, ismrmrd.Image):
        return MessageId.IMAGE, _image_parts(msg)
    if isinstance(msg, ismrmrd.Waveform):
        head = msg._head
        data = np.ascontiguousarray(msg.data, dtype="<u4")
        if data.shape != (head.channels, head.number_of_samples):
            raise ProtocolError(f"waveform data shape {data.shape} disagrees with its header")
        return MessageId.WAVEFORM, [bytes(head), _raw(data)]
    if isinstance(msg, XmlHeader):
        return MessageId.HEADER, [_utf8(msg.xml, "XML header")]
    if isinstance(msg, Close):
        return MessageId.CLOSE, []
    if isinstance(msg, Text):
        return MessageId.TEXT, [_utf8(msg.text, "TEXT")]
    if isinstance(msg, ConfigText):
        return MessageId.CONFIG_TEXT, [_utf8(msg.text, "CONFIG_TEXT")]
    if isinstance(msg, ConfigFile):
        name = _utf8(msg.name, "CONFIG_FILE name")
        if len(name) >= CONFIG_FILE_BYTES or b"\0" in name:
            raise ProtocolError(
                f"CONFIG_FILE name must be < {CONFIG_FILE_BYTES} UTF-8 bytes without NUL"
            )
        return MessageId.CONFIG_FILE, [name.ljust(CONFIG_FILE_BYTES, b"\0")]
    raise ProtocolError(f"{type(msg).__name__} is not a wire message")


def acquisition_parts(acq: ismrmrd.Acquisition) -> list[Buffer]:
    """Payload parts ``[header, trajectory, data]`` of one readout (arrays zero-copy).

    Raises:
        ProtocolError: the arrays disagree with the header.
    """
    head = acq._head  # the ismrmrd serializer writes this same header object
    ns, nc, nd = head.number_of_samples, head.active_channels, head.trajectory_dimensions
    data, traj = acq.data, acq.traj
    if data.shape != (nc, ns) or traj.shape != (ns, nd):
        raise ProtocolError(
            f"acquisition arrays data{data.shape}/traj{traj.shape} disagree with its header "
            f"(channels={nc}, samples={ns}, trajectory_dimensions={nd})"
        )
    if data.dtype != _C64:
        data = data.astype(_C64)
    if traj.dtype != _F32:
        traj = traj.astype(_F32)
    return [bytes(head), _raw(traj), _raw(data)]


def _image_parts(img: ismrmrd.Image) -> list[Buffer]:
    attr = _utf8(img.attribute_string, "image attribute string")
    # As ismrmrd's own serializer does: keep the header's length field truthful.
    img._head.attribute_string_len = len(attr)
    dtype, shape, _ = image_layout(img._head)
    data = img.data
    if data.shape != shape or data.dtype != dtype:
        raise ProtocolError(
            f"image data {data.dtype}{data.shape} disagrees with its header ({dtype}{shape})"
        )
    return [bytes(img._head), attr, _raw(data)]


def _expect_len(part: Buffer, nbytes: int, what: str) -> None:
    if len(part) != nbytes:
        raise ProtocolError(f"{what}: expected {nbytes} bytes, got {len(part)}")


def decode_parts(msg_id: int, parts: Sequence[Buffer]) -> WireMessage:
    """Build a wire message from its id and payload parts, checking every length.

    Args:
        msg_id: MRD message id.
        parts: payload parts as listed in the module docstring; byte buffers
            (``bytes``, ``bytearray``, ``memoryview`` or ZeroMQ frame buffers).

    Raises:
        ProtocolError: unknown id, wrong part count, or a part whose length
            disagrees with what the message's header declares.
    """
    if msg_id == _ACQ and len(parts) == 3:  # the hot path: one readout
        return decode_acquisition(*parts)
    return _decode_other(msg_id, parts)


def _decode_other(msg_id: int, parts: Sequence[Buffer]) -> WireMessage:
    mid = known_id(msg_id)
    if len(parts) != PART_COUNT[mid]:
        raise ProtocolError(
            f"{mid.name} carries {PART_COUNT[mid]} payload parts, got {len(parts)}"
        )
    for part in parts:
        check_size(len(part), f"{mid.name} part")
    if mid == _ACQ:
        return decode_acquisition(*parts)
    if mid == MessageId.RESULT:
        return decode_result(parts[0])
    if mid == MessageId.ERROR:
        return decode_error(parts[0])
    if mid == MessageId.IMAGE:
        return _decode_image(parts)
    if mid == MessageId.WAVEFORM:
        return _decode_waveform(parts)
    if mid == MessageId.HEADER:
        return XmlHeader(_text(parts[0], "XML header"))
    if mid == MessageId.CLOSE:
        return Close()
    if mid == MessageId.TEXT:
        return Text(_text(parts[0], "TEXT"))
    if mid == MessageId.CONFIG_TEXT:
        return ConfigText(_text(parts[0], "CONFIG_TEXT"))
    _expect_len(parts[0], CONFIG_FILE_BYTES, "CONFIG_FILE")
    # A C string in a fixed buffer: the name ends at the first NUL, whatever follows.
    return ConfigFile(_text(bytes(parts[0]).partition(b"\0")[0], "CONFIG_FILE name"))


def decode_acquisition(h: Any, t: Any, d: Any) -> ismrmrd.Acquisition:
    """One readout from its header, trajectory and data parts (any buffer-protocol objects).

    Raises:
        ProtocolError: a part's length disagrees with what the header implies.
    """
    _expect_len(h, ACQ_HEADER_BYTES, "acquisition header")
    head = ismrmrd.AcquisitionHeader.from_buffer_copy(h)
    ns, nc, nd = head.number_of_samples, head.active_channels, head.trajectory_dimensions
    # uint16 fields: at most 65535 x 65535 x 8 bytes, so compare before any cap check.
    if len(t) != ns * nd * 4:
        _expect_len(t, ns * nd * 4, "acquisition trajectory (samples x dims x 4)")
    if len(d) != ns * nc * 8:
        _expect_len(d, ns * nc * 8, "acquisition data (samples x channels x 8)")
    traj = np.frombuffer(t, dtype=_F32).reshape(ns, nd) if nd else np.empty((ns, 0), _F32)
    data = np.frombuffer(d, dtype=_C64).reshape(nc, ns)
    return new_acquisition(head, data, traj)


def decode_acquisition_at(buf: Any, parts: Sequence[tuple[int, int]]) -> ismrmrd.Acquisition:
    """``decode_acquisition`` of the three ``(offset, length)`` parts of ``buf``.

    The arrays are ``np.frombuffer`` views at those offsets (no slices are
    made); any length that disagrees goes through ``decode_acquisition`` for
    the same error it would raise.
    """
    (oh, nh), (ot, nt), (od, nd) = parts
    if nh == ACQ_HEADER_BYTES:
        head = ismrmrd.AcquisitionHeader.from_buffer_copy(buf, oh)
        ns, nc, dims = head.number_of_samples, head.active_channels, head.trajectory_dimensions
        if nt == ns * dims * 4 and nd == ns * nc * 8:
            traj = (np.frombuffer(buf, _F32, ns * dims, ot).reshape(ns, dims) if dims
                    else np.empty((ns, 0), _F32))
            data = np.frombuffer(buf, _C64, ns * nc, od).reshape(nc, ns)
            return new_acquisition(head, data, traj)
    view = memoryview(buf)
    return decode_acquisition(view[oh:oh + nh], view[ot:ot + nt], view[od:od + nd])


def _decode_image(parts: Sequence[Buffer]) -> ismrmrd.Image:
    _expect_len(parts[0], IMAGE_HEADER_BYTES, "image header")
    head = ismrmrd.ImageHeader.from_buffer_copy(parts[0])
    dtype, shape, nbytes = image_layout(head)
    _expect_len(parts[2], nbytes, "image data (channels x z x y x x x itemsize)")
    attr = _text(parts[1], "image attribute string")
    data = np.frombuffer(parts[2], dtype=dtype).reshape(shape)
    try:
        return ismrmrd.Image(head, attribute_string=attr, data=data)
    except Exception as exc:  # ismrmrd parses the attribute XML with ElementTree + asserts
        raise ProtocolError(f"image attribute string is not ISMRMRD meta XML: {exc}") from None


def _decode_waveform(parts: Sequence[Buffer]) -> ismrmrd.Waveform:
    _expect_len(parts[0], WAVEFORM_HEADER_BYTES, "waveform header")
    head = ismrmrd.WaveformHeader.from_buffer_copy(parts[0])
    _expect_len(parts[1], waveform_size(head), "waveform data (channels x samples x 4)")
    data = np.frombuffer(parts[1], dtype="<u4")
    return ismrmrd.Waveform(head, data)


def u64(value: int) -> bytes:
    """Little-endian uint64 bytes."""
    return _U64.pack(value)
