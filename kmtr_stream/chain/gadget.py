"""The gadget protocol.

A gadget is fed one message at a time and yields zero or more messages. It
only sees the message types listed in ``handles``; every other message passes
through unchanged. At end of stream the runtime calls ``flush`` once, and
whatever it yields goes downstream before the CLOSE.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple


@dataclass(frozen=True)
class NoParams:
    """Parameters of a gadget that takes none."""


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
    """What every gadget of one chain instance shares.

    Attributes:
        connection_id: id of the client connection this chain serves.
        backend: array-backend name chosen for the chain ("numpy" or "cupy").
        header: parsed ISMRMRD header (``ismrmrd.xsd.ismrmrdHeader``) once the
            XML header has passed; None before.
        logger: logger to report warnings (e.g. no noise scan) through.
        extras: free slots for cross-gadget state (e.g. a loaded model).
    """

    connection_id: str = "local"
    backend: str = "numpy"
    header: Any = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("kmtr_stream"))
    extras: dict[str, Any] = field(default_factory=dict)
    _local: threading.local = field(default_factory=threading.local, repr=False, compare=False)

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
    override ``process`` and, when they hold state, ``flush``.
    """

    #: Message classes this gadget processes; all others pass through.
    handles: ClassVar[tuple[type, ...]] = ()
    #: Frozen dataclass of typed parameters.
    Params: ClassVar[type] = NoParams
    #: Registered type name (set by ``registry.register``).
    type_name: ClassVar[str] = ""

    def __init__(self, gadget_id: str, params: Any, context: ChainContext) -> None:
        self.id = gadget_id
        self.params = params
        self.context = context

    def on_header(self, header: Any) -> None:
        """Called once when the ISMRMRD XML header passes (parsed ismrmrdHeader)."""

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
