"""``recorder``: writes the incoming stream to an ISMRMRD HDF5 file for replay, passing it on.

The file holds what ``ismrmrd.Dataset`` reads back: the XML header, the
acquisitions (in arrival order), waveforms and images (one image group per
``image_series_index``, named ``images_<series>``). Acquisitions are written
``block`` at a time (one HDF5 resize per block instead of one per readout,
which took ~7 ms each: slower than a scanner's TR); the rest is written on
end of stream and on abort, so a file always ends with every readout received.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import ismrmrd

from kmtr_stream.chain.gadget import ChainContext, Gadget, param
from kmtr_stream.chain.registry import register
from kmtr_stream.errors import ConfigError
from kmtr_stream.ismrmrd_bulk import BlockAppender
from kmtr_stream.messages import XmlHeader


@dataclass(frozen=True)
class RecorderParams:
    """Parameters of the ``recorder`` gadget."""

    path: str = param(
        "recording.h5",
        doc="output HDF5 file; '{connection}' is replaced by the connection id",
    )
    overwrite: bool = param(False, doc="replace an existing file instead of failing")
    dataset_name: str = param("dataset", doc="HDF5 group the ISMRMRD dataset lives in")
    block: int = param(64, min=1, doc="acquisitions written per HDF5 append")


@register("recorder")
class RecorderGadget(Gadget):
    """Records XML header, acquisitions, waveforms and images; closes the file on flush."""

    handles: ClassVar[tuple[type, ...]] = (
        XmlHeader,
        ismrmrd.Acquisition,
        ismrmrd.Waveform,
        ismrmrd.Image,
    )
    Params: ClassVar[type] = RecorderParams

    def __init__(self, gadget_id: str, params: RecorderParams, context: ChainContext) -> None:
        super().__init__(gadget_id, params, context)
        self.path = Path(params.path.replace("{connection}", context.connection_id))
        if self.path.exists() and not params.overwrite:
            raise ConfigError(
                f"gadget {gadget_id!r}: key 'path': {str(self.path)!r} exists (overwrite = false)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._dataset: ismrmrd.Dataset | None = ismrmrd.Dataset(
            str(self.path), params.dataset_name, mode="w" if params.overwrite else "w-"
        )
        self.counts = {"acquisitions": 0, "waveforms": 0, "images": 0, "headers": 0}
        self._acqs = BlockAppender(self._dataset, params.block)

    def process(self, message: Any) -> Iterator[Any]:
        """Append ``message`` to the file and pass it on."""
        ds = self._dataset
        if ds is None:
            raise ConfigError(f"gadget {self.id!r}: recording file {self.path} is already closed")
        if isinstance(message, ismrmrd.Acquisition):
            self._acqs.add(message)
            self.counts["acquisitions"] += 1
        elif isinstance(message, XmlHeader):
            ds.write_xml_header(message.xml.encode("utf-8"))
            self.counts["headers"] += 1
        elif isinstance(message, ismrmrd.Waveform):
            ds.append_waveform(message)
            self.counts["waveforms"] += 1
        elif isinstance(message, ismrmrd.Image):
            ds.append_image(f"images_{message.image_series_index}", message)
            self.counts["images"] += 1
        yield message

    def _close(self) -> None:
        if self._dataset is not None:
            try:
                self._acqs.flush()
            finally:
                self._dataset.close()
                self._dataset = None

    def flush(self) -> Iterator[Any]:
        """End of stream: close the file (nothing is held back)."""
        self._close()
        self.context.logger.info("recorded %s to %s", self.counts, self.path)
        return iter(())

    def describe_state(self) -> str | None:
        """The open file and how much went into it."""
        if self._dataset is None:
            return None
        return (
            f"recording file {self.path} open ({self.counts['acquisitions']} acquisitions written)"
        )

    def on_abort(self) -> None:
        """Keep what was recorded: close the file so it stays readable."""
        self._close()
