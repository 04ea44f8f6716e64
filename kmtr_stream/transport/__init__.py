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
"""

from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.client import ClientTimeoutError, StreamClient
from kmtr_stream.transport.mrd_server import MrdServer
from kmtr_stream.transport.zmq_server import ZmqServer

__all__ = ["ChainCatalog", "ClientTimeoutError", "MrdServer", "StreamClient", "ZmqServer"]
