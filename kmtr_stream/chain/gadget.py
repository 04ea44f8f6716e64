"""The gadget protocol and the context every gadget is built with.

In the spirit of Gadgetron's ``Context``: the session parses the stream's
ISMRMRD XML header once (``StreamHeader.parse``) and starts the chain with it,
so every gadget receives the parsed header and its ``EncodingGeometry`` at
construction and never holds "before the header" state. A gadget is then fed
one message at a time and yields zero or more messages. It only sees the
message types listed in ``handles``; every other message passes through
unchanged. At end of stream the runtime calls ``flush`` once, and whatever it
yields goes downstream before the CLOSE.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import ismrmrd.xsd

from kmtr_stream.errors import DataError, KmtrError, ProtocolError
from kmtr_stream.kspace.geometry import EncodingGeometry, encoding_geometry
from kmtr_stream.limits import Limits
from kmtr_stream.messages import ErrorReport


@dataclass(frozen=True)
class NoParams:
    """Parameters of a gadget that takes none."""


@dataclass(frozen=True)
class StreamHeader:
    """A stream's ISMRMRD XML header, parsed once, with the geometry derived from it.

    Attributes:
        xml: the header text as received.
        header: parsed ``ismrmrd.xsd.ismrmrdHeader``.
        geometry: ``encoding_geometry(header)`` (first encoding).
    """

    xml: str
    header: Any
    geometry: EncodingGeometry

    @classmethod
    def parse(cls, xml: str) -> StreamHeader:
        """Parse ``xml`` and derive its encoding geometry.

        Raises:
            ProtocolError: the text is not an ISMRMRD header with an encoding section.
        """
        try:
            header = ismrmrd.xsd.CreateFromDocument(xml)
        except Exception as exc:
            raise ProtocolError(f"ISMRMRD XML header does not parse: {exc}") from exc
        try:
            geometry = encoding_geometry(header)
        except (ValueError, AttributeError, TypeError) as exc:
            raise ProtocolError(f"ISMRMRD XML header has no usable encoding: {exc}") from exc
        return cls(xml, header, geometry)


class MessageTimes(NamedTuple):
    """Timing of the incoming message a gadget is processing right now.

    Attributes:
        message_index: index of the incoming message (0, 1, 2, ... in submit order);
            None while flushing at end of stream.
        t_submit_ns: ``time.perf_counter_ns()`` when the runner received it.
        t_enter_ns: ``time.perf_counter_ns()`` when it entered this gadget.
    """

    message_index: int | None
    t_submit_ns: int
    t_enter_ns: int


@dataclass
class ChainContext:
    """What every gadget of one chain instance shares; built from the stream's header.

    Attributes:
        header: parsed ISMRMRD header (``ismrmrd.xsd.ismrmrdHeader``) of the stream.
        geometry: encoding geometry derived from ``header``.
        connection_id: id of the client connection this chain serves.
        backend: array-backend name chosen for the chain ("numpy" or "cupy").
        logger: logger to report warnings (e.g. no noise scan) through.
        extras: free slots for cross-gadget state (e.g. a loaded model).
        limits: the server's resource limits (gadgets that allocate check them first).
        validation: the chain's data-validation policy, "strict" or "lenient"
            (``[chain.inputs] validation``, ``kmtr_stream.validation``).
    """

    header: Any
    geometry: EncodingGeometry
    connection_id: str = "local"
    backend: str = "numpy"
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("kmtr_stream"))
    extras: dict[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    validation: str = "strict"
    _local: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A gadget built without the stream's header cannot exist: refuse the context.
        if self.header is None or not isinstance(self.geometry, EncodingGeometry):
            raise KmtrError(
                "a chain context needs the stream's parsed ISMRMRD header and its "
                f"EncodingGeometry (got header={type(self.header).__name__}, "
                f"geometry={type(self.geometry).__name__})"
            )

    @classmethod
    def for_stream(cls, stream: StreamHeader, **kwargs: Any) -> ChainContext:
        """Context of a chain serving the stream whose header is ``stream``."""
        return cls(header=stream.header, geometry=stream.geometry, **kwargs)

    @classmethod
    def from_header(cls, header: Any, **kwargs: Any) -> ChainContext:
        """Context for a parsed ``ismrmrdHeader`` (its geometry derived here)."""
        return cls(header=header, geometry=encoding_geometry(header), **kwargs)

    def current_message_times(self) -> MessageTimes | None:
        """Index and timestamps of the message being processed in the calling thread.

        Set by the chain runtime around every ``process``/``flush`` call, so a
        gadget can put end-to-end latencies into its results. None outside a call.
        """
        return getattr(self._local, "times", None)


class Gadget:
    """Base class of all gadgets.

    Subclasses set ``handles`` (message classes they process) and ``Params``
    (a frozen dataclass; field names carry units, e.g. ``dwell_time_us``), and
    override ``process`` and, when they hold state, ``flush`` and
    ``describe_state``. Everything a gadget needs from the header is in
    ``context.header`` and ``context.geometry`` when its constructor runs.
    """

    #: Message classes this gadget processes; all others pass through.
    handles: ClassVar[tuple[type, ...]] = ()
    #: Frozen dataclass of typed parameters.
    Params: ClassVar[type] = NoParams
    #: Registered type name (set by ``registry.register``).
    type_name: ClassVar[str] = ""

    def __init__(self, gadget_id: str, params: Any, context: ChainContext) -> None:
        if not isinstance(context, ChainContext):
            raise KmtrError(
                f"gadget {gadget_id!r} needs a ChainContext built from the stream's header, "
                f"got {type(context).__name__}"
            )
        self.id = gadget_id
        self.params = params
        self.context = context

    @classmethod
    def check_placement(cls, params: Any, later: tuple[str, ...]) -> str | None:
        """Why this gadget cannot work with ``params`` ahead of gadgets of the types
        ``later`` (in chain order), or None. Checked when a chain config is parsed."""
        return None

    def process(self, message: Any) -> Iterable[Any]:
        """Handle one message of a type in ``handles``; yield what goes downstream."""
        yield message

    def flush(self) -> Iterable[Any]:
        """End of stream: yield everything still held. Called exactly once."""
        return ()

    def describe_state(self) -> str | None:
        """What this gadget holds right now (e.g. "3 slices buffered"), or None if nothing.

        Logged by the runtime when a stream is aborted.
        """
        return None

    def on_abort(self) -> None:
        """The stream was aborted (client vanished): release resources; nothing goes downstream."""

    def data_error(
        self, text: str, context: dict[str, Any], message_index: int | None = None
    ) -> ErrorReport:
        """The ERROR (code ``invalid_data``) of bad input data, logged once for this stream."""
        self.context.logger.error("connection %s: %s: %s", self.context.connection_id,
                                  self.id, text)
        return ErrorReport(code=DataError.code, message=text, gadget=self.id,
                           message_index=message_index, context=context)


def param(
    default: Any,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[Any, ...] | None = None,
    doc: str = "",
) -> Any:
    """A typed gadget parameter with its allowed range, for ``Params`` dataclasses.

    Example::

        @dataclass(frozen=True)
        class Params:
            target_fraction: float = param(0.25, min=0.0, max=1.0, doc="...")

    The config loader checks the value's type against the field's annotation
    and the bounds/choices given here, and names file, gadget id and key when
    a check fails.
    """
    meta = {"min": min, "max": max, "choices": choices, "doc": doc}
    return field(default=default, metadata=meta)
