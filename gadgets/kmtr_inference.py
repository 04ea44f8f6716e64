"""``kmtr_inference``: k-MTR segmentation and slice latents straight from buffered k-space."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from kmtr_stream.chain.gadget import ChainContext, Gadget, param
from kmtr_stream.chain.registry import register
from kmtr_stream.errors import ConfigError, GadgetError, KmtrError
from kmtr_stream.label_images import label_image, slice_result
from kmtr_stream.messages import SliceKSpace


def streamed_timings(inputs: Any, net_ms: float, batch: int, t0_ns: int) -> dict[str, float]:
    """Timings of a slice analysed from a running ky-mix (``SliceInputs``): its network and
    finalize milliseconds, the slices submitted with it, and trigger-to-now as "gadget"."""
    return {
        "network": net_ms, "finalize": inputs.finalize_ms, "batch": float(batch),
        "gadget": (time.perf_counter_ns() - t0_ns) / 1e6,
    }


class LabelOutputs:
    """What an analysing gadget yields per slice: its label image, then its ``SliceResult``.

    Needs ``params.image_series_index`` and ``method``; numbers its images from 0.
    """

    params: Any
    #: ``KMTR_Method`` of its label images.
    method = "k-MTR"
    count = 0

    def outputs(
        self, msg: SliceKSpace, labels: Any, latent: Any, timings: dict[str, float]
    ) -> list[Any]:
        """The label image and ``SliceResult`` of one analysed slice (in that order)."""
        result = slice_result(msg, labels, latent, timings)
        image = label_image(msg, labels, image_index=self.count,
                            series=int(self.params.image_series_index),
                            timings_ms=result.timings_ms, method=self.method)
        self.count += 1
        return [image, result]


@register("kmtr_inference")
class KmtrInferenceGadget(LabelOutputs, Gadget):
    """Runs the k-MTR encoder and segmentation head on each ``SliceKSpace``.

    Yields an ``ismrmrd.Image`` of int16 ACDC labels with the geometry of
    the slice's acquisitions and meta attributes (``kmtr_stream.label_images``),
    then a ``SliceResult`` (labels, latent, lines used, timings incl.
    "post_last_line").
    """

    @dataclass(frozen=True)
    class Params:
        """Parameters of ``kmtr_inference``."""

        model: str = param("default", doc="shipped weights name or path to a .safetensors file")
        image_series_index: int = param(1, min=0, max=65535, doc="series index of the label images")

    handles: ClassVar[tuple[type, ...]] = (SliceKSpace,)
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

    def process(self, message: Any) -> Iterable[Any]:
        from kmtr_stream.model.inference import infer_slice

        msg: SliceKSpace = message
        t0 = time.perf_counter_ns()
        try:
            labels, latent, net_ms = infer_slice(self.model, msg)
        except KmtrError as exc:
            raise GadgetError(self.id, None, f"slice {msg.slice} phase {msg.phase}: {exc}") from exc
        timings = {"network": net_ms, "gadget": (time.perf_counter_ns() - t0) / 1e6}
        yield from self.outputs(msg, labels, latent, timings)
