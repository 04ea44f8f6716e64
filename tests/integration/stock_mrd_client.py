"""A client that behaves like python-ismrmrd-server's ``client.py`` (our own code).

What it does the way that client and its ``Connection`` class do:

- sends CONFIG_FILE (1024 bytes, NUL-padded; ``default.xml`` unless told
  otherwise), the XML header as NUL-terminated text with the NUL counted in
  the length, waveforms (only when asked, before the readouts), every readout
  or every image of the file (``serialize_into`` of the ismrmrd package),
  then CLOSE;
- a receiver thread reads ids 1-5, 1008, 1022 and 1026, cuts text at its
  first NUL, logs TEXT, stores acquisitions, waveforms and images (group
  ``images_<series>``, meta attributes re-serialised with ``ismrmrd.Meta``)
  in the output file, and closes the file at CLOSE;
- any other message id is fatal to the receiver (logged, then it stops
  reading), and the run still "succeeds" as that client's exit 0 does; the
  summary says what happened instead;
- after the receiver is done, the XML header it sent is written into the
  output file.

Every socket read has a timeout, so a test fails instead of hanging.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
from ismrmrd.image import get_dtype_from_data_type

log = logging.getLogger("stock_mrd_client")

KNOWN_IDS = (1, 2, 3, 4, 5, 1008, 1022, 1026)
_ID, _LEN = struct.Struct("<H"), struct.Struct("<I")


@dataclass
class StockRun:
    """What a run of the stock-behaving client saw."""

    received: dict[str, int] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    unknown_ids: list[int] = field(default_factory=list)
    got_close: bool = False
    receiver_error: str | None = None
    out_file: Path = Path()


class _Receiver(threading.Thread):
    def __init__(self, sock: socket.socket, out_file: Path, group: str, run: StockRun) -> None:
        super().__init__(name="stock-receiver", daemon=True)
        self.sock, self.out_file, self.group, self.run_info = sock, out_file, group, run
        self.dset: ismrmrd.Dataset | None = None

    def read(self, n: int, allow_eof: bool = False) -> bytes:
        """Exactly ``n`` bytes (the stock client's ``recv(n, MSG_WAITALL)``, with a timeout)."""
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                if allow_eof and not buf:
                    return b""
                raise ConnectionError(f"connection closed with {n - len(buf)} bytes missing")
            buf += chunk
        return bytes(buf)

    def _text(self) -> str:
        (n,) = _LEN.unpack(self.read(4))
        return self.read(n).decode("utf-8").split("\0", 1)[0]

    def _store(self) -> ismrmrd.Dataset:
        if self.dset is None:
            self.dset = ismrmrd.Dataset(str(self.out_file), self.group)
        return self.dset

    def _count(self, kind: str) -> None:
        self.run_info.received[kind] = self.run_info.received.get(kind, 0) + 1

    def _image(self) -> ismrmrd.Image:
        header = self.read(ctypes.sizeof(ismrmrd.ImageHeader))
        (attr_n,) = struct.unpack("<Q", self.read(8))
        attrs = self.read(attr_n).decode("utf-8")
        image = ismrmrd.Image(header, attrs)
        dtype = get_dtype_from_data_type(image.data_type)
        n = image.channels * int(np.prod(image.matrix_size))
        image.data.ravel()[:] = np.frombuffer(self.read(n * dtype.itemsize), dtype=dtype)
        image.attribute_string = ismrmrd.Meta.deserialize(
            image.attribute_string.split("\0", 1)[0]).serialize()
        return image

    def run(self) -> None:
        try:
            while True:
                head = self.read(2, allow_eof=True)
                if not head:
                    return  # the other side closed
                (mid,) = _ID.unpack(head)
                if mid == 1:
                    self.read(1024)
                elif mid in (2, 3, 5):
                    text = self._text()
                    if mid == 3:
                        self._store().write_xml_header(text.encode("utf-8"))
                    elif mid == 5:
                        log.info("    %s", text)
                        self.run_info.texts.append(text)
                    self._count({2: "config_text", 3: "header", 5: "text"}[mid])
                elif mid == 4:
                    self.run_info.got_close = True
                    if self.dset is not None:
                        self.dset.close()
                        self.dset = None
                    return
                elif mid == 1008:
                    self._store().append_acquisition(ismrmrd.Acquisition.deserialize_from(
                        self.read))
                    self._count("acquisition")
                elif mid == 1022:
                    image = self._image()
                    self._store().append_image(f"images_{image.image_series_index}", image)
                    self._count("image")
                elif mid == 1026:
                    self._store().append_waveform(ismrmrd.Waveform.deserialize_from(self.read))
                    self._count("waveform")
                else:  # as that client: an unknown id stops the receiver for good
                    log.error("Received unknown message type: %d", mid)
                    self.run_info.unknown_ids.append(mid)
                    return
        except Exception as exc:
            self.run_info.receiver_error = f"{type(exc).__name__}: {exc}"
        finally:
            if self.dset is not None:
                self.dset.close()


def _send_text(sock: socket.socket, mid: int, text: str) -> None:
    payload = f"{text}\0".encode()
    sock.sendall(_ID.pack(mid) + _LEN.pack(len(payload)) + payload)


def run_stock_client(
    address: tuple[str, int],
    in_file: Path,
    out_file: Path,
    *,
    config: str = "default.xml",
    send_waveforms: bool = False,
    out_group: str = "dataset",
    timeout_s: float = 60.0,
) -> StockRun:
    """Send ``in_file`` (raw data or images) to ``address``; store the replies in ``out_file``."""
    run = StockRun(out_file=out_file)
    with h5py.File(in_file, "r") as f:
        is_raw = "data" in f["dataset"] and "xml" in f["dataset"]
        image_groups = [g for g in f["dataset"] if g.startswith("image")]
    sock = socket.create_connection(address, timeout=timeout_s)
    receiver = _Receiver(sock, out_file, out_group, run)
    receiver.start()
    dset = ismrmrd.Dataset(str(in_file), "dataset", False)
    try:
        sock.sendall(_ID.pack(1) + config.encode().ljust(1024, b"\0"))
        xml = dset.read_xml_header()
        xml = xml.decode("utf-8") if isinstance(xml, bytes) else str(xml)
        _send_text(sock, 3, xml)

        def write(buf: object) -> None:
            sock.sendall(bytes(buf))  # type: ignore[call-overload]

        if send_waveforms and "waveforms" in dset.list():
            for i in range(dset.number_of_waveforms()):
                sock.sendall(_ID.pack(1026))
                dset.read_waveform(i).serialize_into(write)
        if is_raw:
            for i in range(dset.number_of_acquisitions()):
                sock.sendall(_ID.pack(1008))
                dset.read_acquisition(i).serialize_into(write)
        else:
            for group in image_groups:
                for i in range(dset.number_of_images(group)):
                    image = dset.read_image(group, i)
                    if not isinstance(image.attribute_string, str):
                        image.attribute_string = image.attribute_string.decode("utf-8")
                    sock.sendall(_ID.pack(1022))
                    image.serialize_into(write)
        sock.sendall(_ID.pack(4))
    finally:
        dset.close()
    receiver.join(timeout_s)
    alive = receiver.is_alive()
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
    receiver.join(5.0)
    if alive:
        run.receiver_error = run.receiver_error or f"no CLOSE within {timeout_s:g} s"
    out = ismrmrd.Dataset(str(out_file), out_group)
    try:
        out.write_xml_header(xml.encode("utf-8"))
    finally:
        out.close()
    return run
