"""``kmtr_network``: the network half of ``kmtr_streaming``, for a thread of its own.

With ``hand_off = true`` the streaming gadget stops at the network's input: it
yields a ``PreparedSlice`` per finished slice and goes back to folding in lines.
This gadget, placed after it with ``new_thread = true``, runs the network on
those slices (through the model's shared batcher, so slices of other connected
scanners still share forward passes) and yields what ``kmtr_streaming`` would
have yielded. The two halves then overlap: while the network analyses slice n,
the lines of slice n + 1 are received, prewhitened and encoded on the other core.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from gadgets.kmtr_inference import LabelOutputs, streamed_timings
from kmtr_stream.chain.gadget import Gadget, param
from kmtr_stream.chain.registry import register
from kmtr_stream.errors import GadgetError, KmtrError
from kmtr_stream.messages import PreparedSlice


@register("kmtr_network")
class KmtrNetworkGadget(LabelOutputs, Gadget):
    """Runs the network on each ``PreparedSlice``; yields a label image, then a ``SliceResult``.

    The result's timings are ``kmtr_streaming``'s ("network", "finalize",
    "batch"); "gadget" spans both halves, from the trigger to the result,
    queue wait included.
    """

    @dataclass(frozen=True)
    class Params:
        """Parameters of ``kmtr_network``."""

        image_series_index: int = param(1, min=0, max=65535, doc="series index of the label images")

    handles: ClassVar[tuple[type, ...]] = (PreparedSlice,)

    def process(self, message: Any) -> Iterable[Any]:
        msg: PreparedSlice = message
        s = msg.slice
        try:
            labels, latent, net_ms, batch = msg.network.run(msg.inputs)
        except KmtrError as exc:
            raise GadgetError(
                self.id, None, f"slice {s.slice} phase {s.phase}: network failed: {exc}"
            ) from exc
        yield from self.outputs(
            s, labels, latent, streamed_timings(msg.inputs, net_ms, batch, msg.t0_ns))
