"""MRD/TCP byte-stream framing, bit-exact with ``ismrmrd.serialization``.

Each message is a little-endian uint16 message id followed by its payload:
length-prefixed (uint32) text and msgpack payloads, the fixed 1024-byte
CONFIG_FILE, and ISMRMRD headers followed by the arrays they declare (the
image attribute string carries a uint64 length). This is what Gadgetron and
the python-ismrmrd-server speak.

Text payloads (HEADER, TEXT, CONFIG_TEXT) come in two dialects: the
python-ismrmrd-server and Gadgetron count a trailing NUL in the length,
``ismrmrd.serialization`` does not (and its reader cannot parse a header
with one). Both are read; ``text_nul=True`` writes the first, the default
the second. ``StreamReader.text_nul`` tells which one a peer used, so a
server can answer each client in its own dialect.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO

import ismrmrd

from kmtr_stream.codec.parts import (
    ACQ_HEADER_BYTES,
    CONFIG_FILE_BYTES,
    IMAGE_HEADER_BYTES,
    LENGTH_PREFIXED,
    WAVEFORM_HEADER_BYTES,
    Buffer,
    acquisition_sizes,
    check_size,
    decode_parts,
    encode_parts,
    image_layout,
    known_id,
    u64,
    waveform_size,
)
from kmtr_stream.errors import ProtocolError
from kmtr_stream.limits import Limits
from kmtr_stream.limits import check_size as check_limit
from kmtr_stream.messages import Close, MessageId, WireMessage

_ID = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
#: Length-prefixed ids whose payload is text (the NUL-terminator dialects apply).
TEXT_IDS = frozenset({MessageId.HEADER, MessageId.TEXT, MessageId.CONFIG_TEXT})
#: Payloads above this are read in chunks, so a hostile length cannot make us allocate it upfront.
_PREALLOCATE_BYTES = 16 << 20
_CHUNK_BYTES = 1 << 20


def encode_stream_parts(msg: WireMessage, text_nul: bool = False) -> list[Buffer]:
    """The byte pieces of one message in the MRD byte stream (join or ``sendmsg`` them).

    Args:
        msg: the message.
        text_nul: end HEADER, TEXT and CONFIG_TEXT with a NUL counted in the
            length, as the python-ismrmrd-server and Gadgetron do.
    """
    msg_id, parts = encode_parts(msg)
    out: list[Buffer] = [_ID.pack(msg_id)]
    if msg_id in LENGTH_PREFIXED:
        payload = parts[0]
        if text_nul and msg_id in TEXT_IDS:
            payload = bytes(payload) + b"\0"
        out.append(_U32.pack(check_size(len(payload), MessageId(msg_id).name)))
        out.append(payload)
    elif msg_id == MessageId.IMAGE:
        out += [parts[0], u64(len(parts[1])), parts[1], parts[2]]
    else:
        out += parts
    return out


def encode_stream(msg: WireMessage, text_nul: bool = False) -> bytes:
    """One message as MRD byte-stream bytes (message id + payload); see ``encode_stream_parts``."""
    return b"".join(encode_stream_parts(msg, text_nul))


ReadInto = Callable[[memoryview], int]


class StreamReader:
    """Incremental reader of MRD byte-stream messages.

    Args:
        read_into: ``f(buf) -> n`` filling up to ``len(buf)`` bytes of ``buf``
            and returning how many it wrote (0 at end of stream), like
            ``socket.recv_into`` or ``BufferedReader.readinto``.

    Example::

        reader = StreamReader.from_socket(sock)
        for msg in reader:   # stops after Close or at a clean end of stream
            ...
    """

    def __init__(self, read_into: ReadInto, limits: Limits | None = None) -> None:
        self._read_into = read_into
        self.limits = limits
        self.messages_read = 0
        #: Whether the first text payload read (HEADER, TEXT, CONFIG_TEXT) ended with
        #: a NUL; None until one was read.
        self.text_nul: bool | None = None

    @classmethod
    def from_socket(cls, sock: socket.socket, limits: Limits | None = None) -> StreamReader:
        """Reader over a connected stream socket."""
        return cls(sock.recv_into, limits)

    @classmethod
    def from_file(cls, f: BinaryIO) -> StreamReader:
        """Reader over a binary file-like object (``readinto`` or ``read``)."""
        readinto = getattr(f, "readinto", None)
        if readinto is not None:
            return cls(readinto)

        def read_into(buf: memoryview) -> int:
            data = f.read(len(buf))
            buf[: len(data)] = data
            return len(data)

        return cls(read_into)

    def _fill(self, buf: memoryview) -> int:
        got = 0
        while got < len(buf):
            n = self._read_into(buf[got:])
            if not n:
                break
            got += n
        return got

    def read_exactly(self, nbytes: int, what: str) -> bytearray:
        """Read exactly ``nbytes`` or raise ProtocolError naming ``what`` as truncated."""
        if nbytes <= _PREALLOCATE_BYTES:
            buf = bytearray(nbytes)
            got = self._fill(memoryview(buf))
            if got < nbytes:
                raise ProtocolError(f"truncated {what}: expected {nbytes} bytes, got {got}")
            return buf
        chunks: list[bytearray] = []
        left = nbytes
        while left:
            chunk = bytearray(min(left, _CHUNK_BYTES))
            got = self._fill(memoryview(chunk))
            if got < len(chunk):
                done = nbytes - left + got
                raise ProtocolError(f"truncated {what}: expected {nbytes} bytes, got {done}")
            chunks.append(chunk)
            left -= got
        return bytearray().join(chunks)

    def _size(self, nbytes: int, what: str, text: bool = False) -> int:
        """``nbytes`` after the codec's cap and the configured limit (before reading it)."""
        check_size(nbytes, what)
        if self.limits is not None:
            check_limit(self.limits, nbytes, what, text)
        return nbytes

    def read_message(self) -> WireMessage | None:
        """The next message, or None at a clean end of stream (between messages).

        Raises:
            ProtocolError: unknown message id, truncation, or inconsistent lengths.
        """
        head = bytearray(2)
        got = self._fill(memoryview(head))
        if got == 0:
            return None
        if got < 2:
            raise ProtocolError("truncated message id: expected 2 bytes, got 1")
        mid = known_id(_ID.unpack(head)[0])
        name = mid.name
        parts: list[Buffer]
        if mid in LENGTH_PREFIXED:
            (n,) = _U32.unpack(self.read_exactly(4, f"{name} length"))
            payload = self.read_exactly(self._size(n, name, mid in TEXT_IDS), f"{name} payload")
            if self.text_nul is None and mid in TEXT_IDS:
                self.text_nul = payload.endswith(b"\0")
            parts = [payload]
        elif mid == MessageId.CLOSE:
            parts = []
        elif mid == MessageId.CONFIG_FILE:
            parts = [self.read_exactly(CONFIG_FILE_BYTES, "CONFIG_FILE payload")]
        elif mid == MessageId.ACQUISITION:
            hdr = self.read_exactly(ACQ_HEADER_BYTES, "acquisition header")
            traj_n, data_n = acquisition_sizes(ismrmrd.AcquisitionHeader.from_buffer(hdr))
            self._size(traj_n + data_n, "acquisition")
            traj = self.read_exactly(traj_n, "acquisition trajectory")
            parts = [hdr, traj, self.read_exactly(data_n, "acquisition data")]
        elif mid == MessageId.IMAGE:
            hdr = self.read_exactly(IMAGE_HEADER_BYTES, "image header")
            _, _, data_n = image_layout(ismrmrd.ImageHeader.from_buffer(hdr))
            (attr_n,) = _U64.unpack(self.read_exactly(8, "image attribute length"))
            attr = self.read_exactly(self._size(attr_n, "image attributes", True),
                                     "image attributes")
            parts = [hdr, attr, self.read_exactly(self._size(data_n, "image data"), "image data")]
        else:  # WAVEFORM
            hdr = self.read_exactly(WAVEFORM_HEADER_BYTES, "waveform header")
            data_n = self._size(waveform_size(ismrmrd.WaveformHeader.from_buffer(hdr)),
                                "waveform data")
            parts = [hdr, self.read_exactly(data_n, "waveform data")]
        msg = decode_parts(mid, parts)
        self.messages_read += 1
        return msg

    def __iter__(self) -> Iterator[WireMessage]:
        """Messages up to and including Close (or until a clean end of stream)."""
        while True:
            msg = self.read_message()
            if msg is None:
                return
            yield msg
            if isinstance(msg, Close):
                return


def decode_stream(data: bytes | bytearray | memoryview) -> list[WireMessage]:
    """Every message in a complete MRD byte string (ProtocolError on a trailing partial one)."""
    view = memoryview(data).cast("B")
    pos = 0

    def read_into(buf: memoryview) -> int:
        nonlocal pos
        n = min(len(buf), len(view) - pos)
        buf[:n] = view[pos : pos + n]
        pos += n
        return n

    reader = StreamReader(read_into)
    out: list[WireMessage] = []
    while True:
        msg = reader.read_message()
        if msg is None:
            return out
        out.append(msg)
