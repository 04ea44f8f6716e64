"""``kmtr_inference``: k-MTR segmentation and slice latents straight from buffered k-space."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kmtr_stream.chain.gadget import ChainContext, Gadget, param
from kmtr_stream.chain.registry import register
from kmtr_stream.errors import ConfigError, GadgetError, KmtrError
from kmtr_stream.messages import SliceKSpace


@register("kmtr_inference")
class KmtrInferenceGadget(Gadget):
    """Runs the k-MTR encoder and segmentation head on each ``SliceKSpace``.

    Yields an ``ismrmrd.Image`` of int16 ACDC labels and a ``SliceResult``
    (labels, latent, lines used, timings incl. "post_last_line").
    """

    @dataclass(frozen=True)
    class Params:
        """Parameters of ``kmtr_inference``."""

        model: str = param("default", doc="shipped weights name or path to a .safetensors file")
        image_series_index: int = param(1, min=0, max=65535, doc="series index of the label images")

    handles = (SliceKSpace,)
    #: model kind this gadget accepts.
    expected_kind = "kmtr"

    def __init__(self, gadget_id: str, params: Any, context: ChainContext) -> None:
        super().__init__(gadget_id, params, context)
        from kmtr_stream.model.io import load_model

        try:
            self.model = load_model(params.model)
        except KmtrError as exc:
            raise ConfigError(
                f"gadget {gadget_id!r}: cannot load model {params.model!r}: {exc}"
            ) from exc
        if self.model.kind != self.expected_kind:
            raise ConfigError(
                f"gadget {gadget_id!r}: model {params.model!r} is a {self.model.kind!r} model, "
                f"{self.type_name} needs {self.expected_kind!r}"
            )
        self.count = 0

    def process(self, message: Any) -> Iterable[Any]:
        from kmtr_stream.model.inference import run_inference

        msg: SliceKSpace = message
        try:
            out = run_inference(self.model, msg, self.count, int(self.params.image_series_index))
        except KmtrError as exc:
            raise GadgetError(self.id, None, f"slice {msg.slice} phase {msg.phase}: {exc}") from exc
        self.count += 1
        yield from out
