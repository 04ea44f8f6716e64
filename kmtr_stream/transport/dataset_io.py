"""Stream a recorded ISMRMRD HDF5 dataset to a server and save what comes back.

Output directory layout (the README's "Results format" section has the full
description):

- ``output.h5``: ISMRMRD dataset (group ``dataset``) with the XML header the
  server returned (or, when it returned none, the one sent), returned
  acquisitions and waveforms, and images in ``images_<image_series_index>``
  groups (readable with ``ismrmrd.Dataset``). An image whose size or data
  type differs from the earlier ones of its series goes to a group of its
  own, ``images_<series>_<x>x<y>x<z>x<channels>_<dtype>``, since an HDF5
  image group holds one shape.
- ``messages.jsonl``: one JSON object per line for every result, error and
  text message, in arrival order (both results modes read alike):
  ``{"type": "result", "kind", "body"}``,
  ``{"type": "error", "code", "message", "gadget", "message_index", "context"}``
  or ``{"type": "text", "text"}``. Binary values appear as
  ``{"$bytes_b64": "..."}``, NaN and infinities as ``null``.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ismrmrd
from ismrmrd.image import get_dtype_from_data_type

from kmtr_stream.codec.standard import jsonable
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


@dataclass
class StreamSummary:
    """What one ``stream_dataset`` call sent and received."""

    sent: int = 0
    received: dict[str, int] = field(default_factory=dict)
    errors: list[ErrorReport] = field(default_factory=list)
    output_dir: Path = Path()
    #: True when the server returned no XML header and the one sent was saved.
    header_from_sent: bool = False
    #: Why sending stopped early (the server had reported errors), or None.
    send_error: str | None = None


class ResultWriter:
    """Writes returned messages into ``output.h5`` and ``messages.jsonl`` (see module doc)."""

    def __init__(self, out_dir: str | Path, fallback_header: str | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        h5 = self.out_dir / OUTPUT_H5
        h5.unlink(missing_ok=True)
        self._ds = ismrmrd.Dataset(str(h5), "dataset", create_if_needed=True)
        self._jsonl = (self.out_dir / MESSAGES_JSONL).open("w", encoding="utf-8")
        self._acqs = BlockAppender(self._ds)
        self._fallback_header = fallback_header
        self.header_written = False
        #: image group -> (matrix_size, channels, data_type) it holds.
        self._image_groups: dict[str, tuple[tuple[int, ...], int, int]] = {}

    def _write_header(self, xml: str) -> None:
        self._ds.write_xml_header(xml.encode("utf-8"))
        self.header_written = True

    def _line(self, obj: dict[str, Any]) -> None:
        self._jsonl.write(json.dumps(jsonable(obj)) + "\n")

    def image_group(self, img: ismrmrd.Image) -> str:
        """HDF5 group for ``img``: its series' group, or one of its own for a new shape."""
        layout = (tuple(int(v) for v in img.matrix_size), int(img.channels), int(img.data_type))
        name = f"images_{img.image_series_index}"
        held = self._image_groups.setdefault(name, layout)
        if held != layout:
            (x, y, z), ch, dt = layout
            dtype = get_dtype_from_data_type(dt).name
            name = f"{name}_{x}x{y}x{z}x{ch}_{dtype}"
            self._image_groups.setdefault(name, layout)
        return name

    def write(self, msg: WireMessage) -> None:
        """Store one returned message."""
        if isinstance(msg, ismrmrd.Acquisition):
            self._acqs.add(msg)
        elif isinstance(msg, ismrmrd.Image):
            self._ds.append_image(self.image_group(msg), msg)
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
        """Write the fallback header if none came back; flush and close both files."""
        try:
            if not self.header_written and self._fallback_header is not None:
                self._write_header(self._fallback_header)
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
    curve: Any = None,
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
        curve: ``curve_auth.ClientCurve`` for a ZeroMQ server with CURVE, or None.

    Raises:
        KmtrError: unreadable dataset, connection failure, timeout or a server
            that breaks off (what arrived before is saved all the same).
    """
    summary = StreamSummary(output_dir=Path(out_dir))
    messages = read_dataset(path, dataset_name)
    first = next(messages)  # the XML header; opening the file fails here, before connecting
    assert isinstance(first, XmlHeader)
    with StreamClient.connect(url, curve=curve) as client:
        try:
            writer = ResultWriter(out_dir, fallback_header=first.xml)
        except OSError as exc:
            raise KmtrError(f"{out_dir}: cannot create the output files: {exc}") from None
        try:
            send_error: KmtrError | None = None
            try:
                if config is not None:
                    client.send(ConfigFile(config))
                summary.sent = client.send_many(itertools.chain([first], messages), pack=pack)
                client.send(Close())
            except KmtrError as exc:
                # The server stopped taking data (it may have reported why): keep its replies.
                send_error = exc
            try:
                for msg in client.replies(timeout_s if send_error is None else 2.0):
                    writer.write(msg)  # saved as it arrives
                    name = type(msg).__name__
                    summary.received[name] = summary.received.get(name, 0) + 1
                    if isinstance(msg, ErrorReport):
                        summary.errors.append(msg)
            except KmtrError:
                if send_error is None:
                    raise
            if send_error is not None:
                summary.send_error = str(send_error)
                if not summary.errors:  # else the server's own report says why
                    raise send_error
        except (OSError, ValueError) as exc:  # h5py and file errors while saving
            raise KmtrError(f"{out_dir}: cannot save a reply: {exc}") from None
        finally:
            summary.header_from_sent = not writer.header_written
            writer.close()
    return summary
