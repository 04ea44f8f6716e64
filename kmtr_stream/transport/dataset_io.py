"""Stream a recorded ISMRMRD HDF5 dataset to a server and save what comes back.

Output directory layout (``RESULT_DIR``):

- ``output.h5``: ISMRMRD dataset (group ``dataset``) with the XML header the
  server returned (or the one sent), returned acquisitions and waveforms, and
  images in ``images_<image_series_index>`` groups (readable with
  ``ismrmrd.Dataset``).
- ``messages.jsonl``: one JSON object per line for every RESULT, ERROR and
  TEXT message, in arrival order: ``{"type": "result", "kind", "body"}``,
  ``{"type": "error", "code", "message", "gadget", "message_index", "context"}``
  or ``{"type": "text", "text"}``. msgpack binary values appear as
  ``{"$bytes_b64": "..."}``.
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ismrmrd

from kmtr_stream.errors import KmtrError
from kmtr_stream.ismrmrd_bulk import BlockAppender, iter_acquisitions
from kmtr_stream.messages import (
    Close,
    ConfigFile,
    ErrorReport,
    Result,
    Text,
    WireMessage,
    XmlHeader,
)
from kmtr_stream.transport.client import StreamClient

OUTPUT_H5 = "output.h5"
MESSAGES_JSONL = "messages.jsonl"


def read_dataset(path: str | Path, dataset_name: str = "dataset") -> Iterator[WireMessage]:
    """The XML header, then acquisitions and waveforms merged by time stamp.

    Raises:
        KmtrError: the file cannot be opened or has no XML header.
    """
    try:
        ds = ismrmrd.Dataset(str(path), dataset_name, create_if_needed=False, mode="r")
    except OSError as exc:
        raise KmtrError(f"{path}: cannot open ISMRMRD dataset: {exc}") from None
    try:
        try:
            xml = ds.read_xml_header()
        except LookupError as exc:
            raise KmtrError(f"{path}: {exc}") from None
        yield XmlHeader(xml.decode("utf-8") if isinstance(xml, bytes) else str(xml))
        groups = set(ds.list())
        n_wav = ds.number_of_waveforms() if "waveforms" in groups else 0
        acqs = iter_acquisitions(ds) if "data" in groups else iter(())
        wavs = (ds.read_waveform(i) for i in range(n_wav))
        keyed_a = ((a.acquisition_time_stamp, 0, i, a) for i, a in enumerate(acqs))
        keyed_w = ((w.time_stamp, 1, i, w) for i, w in enumerate(wavs))
        if n_wav == 0:
            yield from (item[3] for item in keyed_a)
        else:
            for *_, msg in heapq.merge(keyed_a, keyed_w, key=lambda t: t[:3]):
                yield msg
    finally:
        ds.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes_b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@dataclass
class StreamSummary:
    """What one ``stream_dataset`` call sent and received."""

    sent: int = 0
    received: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    output_dir: Path = Path()


class ResultWriter:
    """Writes returned messages into ``output.h5`` and ``messages.jsonl`` (see module doc)."""

    def __init__(self, out_dir: str | Path, header_xml: str | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        h5 = self.out_dir / OUTPUT_H5
        h5.unlink(missing_ok=True)
        self._ds = ismrmrd.Dataset(str(h5), "dataset", create_if_needed=True)
        self._jsonl = (self.out_dir / MESSAGES_JSONL).open("w", encoding="utf-8")
        self._acqs = BlockAppender(self._ds)
        self._header_written = False
        if header_xml is not None:
            self._write_header(header_xml)

    def _write_header(self, xml: str) -> None:
        self._ds.write_xml_header(xml.encode("utf-8"))
        self._header_written = True

    def _line(self, obj: dict[str, Any]) -> None:
        self._jsonl.write(json.dumps(_jsonable(obj)) + "\n")

    def write(self, msg: WireMessage) -> None:
        """Store one returned message."""
        if isinstance(msg, ismrmrd.Acquisition):
            self._acqs.add(msg)
        elif isinstance(msg, ismrmrd.Image):
            self._ds.append_image(f"images_{msg.image_series_index}", msg)
        elif isinstance(msg, ismrmrd.Waveform):
            self._ds.append_waveform(msg)
        elif isinstance(msg, XmlHeader):
            self._write_header(msg.xml)
        elif isinstance(msg, Result):
            self._line({"type": "result", "kind": msg.kind, "body": msg.body})
        elif isinstance(msg, ErrorReport):
            self._line({"type": "error", "code": msg.code, "message": msg.message,
                        "gadget": msg.gadget, "message_index": msg.message_index,
                        "context": msg.context})
        elif isinstance(msg, Text):
            self._line({"type": "text", "text": msg.text})

    def close(self) -> None:
        """Flush and close both files."""
        try:
            self._acqs.flush()
        finally:
            self._jsonl.close()
            self._ds.close()


def stream_dataset(
    path: str | Path,
    url: str,
    out_dir: str | Path,
    *,
    config: str | None = None,
    dataset_name: str = "dataset",
    timeout_s: float = 120.0,
    pack: int = 16,
) -> StreamSummary:
    """Send a recorded dataset to ``url`` and save everything that comes back in ``out_dir``.

    Args:
        path: ISMRMRD HDF5 file.
        url: ``tcp://host:port`` (ZeroMQ) or ``mrd://host:port`` (MRD/TCP).
        out_dir: result directory (created; ``output.h5`` and ``messages.jsonl``).
        config: server-side chain name to select with CONFIG_FILE, or None.
        dataset_name: HDF5 group of the dataset.
        timeout_s: how long to wait for the server's CLOSE after sending.
        pack: messages per transport write (see ``StreamClient.send_many``);
            the dataset is already recorded, so nothing waits on a scanner.

    Raises:
        KmtrError: unreadable dataset, connection failure or timeout (what
            arrived before a timeout is saved all the same).
    """
    summary = StreamSummary(output_dir=Path(out_dir))
    with StreamClient.connect(url) as client:
        if config is not None:
            client.send(ConfigFile(config))
        summary.sent = client.send_many(read_dataset(path, dataset_name), pack=pack)
        client.send(Close())
        writer = ResultWriter(out_dir)
        try:
            for msg in client.replies(timeout_s):  # saved as it arrives
                writer.write(msg)
                name = type(msg).__name__
                summary.received[name] = summary.received.get(name, 0) + 1
                if isinstance(msg, ErrorReport):
                    summary.errors.append(msg.message)
        finally:
            writer.close()
    return summary
