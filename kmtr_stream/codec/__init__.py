"""Wire codec: MRD messages <-> MRD/TCP bytes and ZeroMQ multipart frames.

Malformed input of any kind raises ``kmtr_stream.errors.ProtocolError`` and
nothing else.
"""

from kmtr_stream.codec.parts import MAX_MESSAGE_BYTES, decode_parts, encode_parts
from kmtr_stream.codec.stream import (
    StreamReader,
    decode_stream,
    encode_stream,
    encode_stream_parts,
)
from kmtr_stream.codec.zmq_frames import MAGIC, ZMQ_FRAMING_VERSION, decode_frames, encode_frames

__all__ = [
    "MAGIC",
    "MAX_MESSAGE_BYTES",
    "ZMQ_FRAMING_VERSION",
    "StreamReader",
    "decode_frames",
    "decode_parts",
    "decode_stream",
    "encode_frames",
    "encode_parts",
    "encode_stream",
    "encode_stream_parts",
]
