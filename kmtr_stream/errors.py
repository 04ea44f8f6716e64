"""Error hierarchy: every error the project raises on purpose derives from KmtrError."""

from __future__ import annotations


class KmtrError(Exception):
    """Base class of all k-MTR Stream errors."""

    #: Short machine-readable code carried in ERROR messages to the client.
    code = "error"


class ProtocolError(KmtrError):
    """Bytes or frames on the wire do not form a valid message."""

    code = "protocol"


class UnknownMessageError(ProtocolError):
    """A sound frame names a message id this codec does not know (skippable on ZeroMQ)."""


class ConfigError(KmtrError):
    """A chain or training config is invalid (names file, gadget id and key)."""

    code = "config"


class GadgetError(KmtrError):
    """A gadget failed on a message; names the gadget and the message index."""

    code = "gadget"

    def __init__(self, gadget_id: str, message_index: int | None, detail: str) -> None:
        where = f"gadget {gadget_id!r}"
        if message_index is not None:
            where += f" on message #{message_index}"
        super().__init__(f"{where}: {detail}")
        self.gadget_id = gadget_id
        self.message_index = message_index
        self.detail = detail


class BufferEvictedError(KmtrError):
    """A slice buffer was evicted before it completed (memory cap reached)."""

    code = "evicted"


class LimitError(ProtocolError):
    """A configured resource limit was reached; names the limit, its value and what hit it."""

    code = "limit"

    def __init__(self, limit: str, value: int | float, detail: str) -> None:
        super().__init__(f"limit {limit}={value:g} reached: {detail}")
        self.limit = limit
        self.value = value


class ShutdownError(KmtrError):
    """The server is shutting down: the stream ends early (everything received is flushed)."""

    code = "shutdown"


class DataError(KmtrError):
    """Incoming data failed validation (NaN/Inf, counters, duplicates, header mismatch)."""

    code = "invalid_data"
