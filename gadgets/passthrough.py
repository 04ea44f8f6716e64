"""``passthrough``: forwards every message unchanged (a chain that only relays the stream)."""

from __future__ import annotations

from typing import ClassVar

from kmtr_stream.chain.gadget import Gadget, NoParams
from kmtr_stream.chain.registry import register


@register("passthrough")
class PassthroughGadget(Gadget):
    """Handles no message type, so the runtime passes everything on untouched."""

    handles: ClassVar[tuple[type, ...]] = ()
    Params: ClassVar[type] = NoParams
