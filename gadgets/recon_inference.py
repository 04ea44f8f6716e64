"""``recon_inference``: the recon-then-analyze baseline (zero-filled IFFT, RSS, image network)."""

from __future__ import annotations

from dataclasses import dataclass

from gadgets.kmtr_inference import KmtrInferenceGadget
from kmtr_stream.chain.gadget import param
from kmtr_stream.chain.registry import register


@register("recon_inference")
class ReconInferenceGadget(KmtrInferenceGadget):
    """Reconstructs each ``SliceKSpace`` (zero-filled, RSS) and runs the image network on it.

    Same outputs as ``kmtr_inference``: an int16 label image and a ``SliceResult``.
    """

    @dataclass(frozen=True)
    class Params:
        """Parameters of ``recon_inference``."""

        model: str = param("recon", doc="shipped weights name or path of an image model")
        image_series_index: int = param(2, min=0, max=65535, doc="series index of the label images")

    expected_kind = "image"
    method = "recon-then-analyze"
