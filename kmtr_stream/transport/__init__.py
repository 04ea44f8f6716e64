"""Network transports: ZeroMQ and MRD/TCP servers, and the streaming client.

Error policy, both endpoints: a protocol error (truncated or malformed
message, header/data size mismatch, a second XML header, data before the
header, an unknown or disallowed chain name) is sent to that client as an
ERROR message and logged; the stream then ends gracefully: everything valid
received before the error is flushed through the chain and returned, then
CLOSE. Later messages of that stream are dropped until the client's CLOSE.
On ZeroMQ an unknown message id is only reported and skipped, because frames
are self-delimiting; on MRD/TCP it ends the stream (the byte stream cannot be
resynchronised). A client that vanishes mid-stream gets its chain aborted
with a logged error; other connections are never affected.

Results go out as msgpack RESULT/ERROR messages (ZeroMQ's default) or, in
the standard results mode (MRD/TCP's default), as TEXT only, so stock MRD
clients read them (``kmtr_stream.codec.standard``). Client messages that no
gadget of the chain handles follow its ``[chain.inputs]`` policy
(``kmtr_stream.transport.session``).

The names below are imported on first use, so a client (``kmtr-stream
send``) does not load the servers and the chain runtime.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ChainCatalog": "kmtr_stream.transport.catalog",
    "ClientTimeoutError": "kmtr_stream.transport.client",
    "StreamClient": "kmtr_stream.transport.client",
    "MrdServer": "kmtr_stream.transport.mrd_server",
    "ZmqServer": "kmtr_stream.transport.zmq_server",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
