"""Recorder gadget: the file re-opens with ismrmrd.Dataset and holds the stream bit for bit."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest

from kmtr_stream.chain.config import parse_chain_config
from kmtr_stream.chain.runtime import ChainRunner
from kmtr_stream.errors import ConfigError
from kmtr_stream.messages import Text, XmlHeader
from tests.unit.chain_helpers import HEADER, HEADER_XML, make_acquisition


def recorder_spec(path: Path, overwrite: bool = False, block: int = 64) -> Any:
    return parse_chain_config(
        f'[chain]\nbackend = "numpy"\n[[gadgets]]\nid = "rec"\ntype = "recorder"\n'
        f'[gadgets.params]\npath = "{path}"\noverwrite = {str(overwrite).lower()}\n'
        f"block = {block}\n"
        '[[gadgets]]\nid = "pass"\ntype = "passthrough"\n',
        "record.toml",
    )


def make_waveform(i: int) -> ismrmrd.Waveform:
    data = (np.arange(2 * 7, dtype=np.uint32).reshape(2, 7) + i).astype(np.uint32)
    wav = ismrmrd.Waveform.from_array(data)
    wav.waveform_id = 1
    return wav


def make_image(i: int) -> ismrmrd.Image:
    img = ismrmrd.Image.from_array(np.full((1, 1, 5, 6), i, dtype=np.int16))
    img.image_series_index = 2
    img.image_index = i
    return img


@pytest.mark.parametrize("block", [4, 64])  # 13 readouts: several blocks and a rest; one rest
def test_recording_replays_bit_for_bit(tmp_path: Path, block: int) -> None:
    path = tmp_path / "rec" / "{connection}.h5"
    acqs = [make_acquisition(i, coils=5, samples=33) for i in range(13)]
    msgs: list[Any] = [XmlHeader(HEADER_XML), *acqs[:7], make_waveform(0), *acqs[7:], make_image(0)]
    msgs.append(Text("not recorded, passed on"))
    out: list[Any] = []
    spec = recorder_spec(path, block=block)
    runner = ChainRunner(spec, emit=out.append, header=HEADER, connection_id="c42")
    runner.start()
    for m in msgs:
        runner.submit(m)
    assert runner.close(timeout=10)
    assert len(out) == len(msgs) and all(a is b for a, b in zip(out, msgs, strict=True))

    ds = ismrmrd.Dataset(str(tmp_path / "rec" / "c42.h5"), "dataset", create_if_needed=False)
    try:
        xml = ds.read_xml_header()
        assert (xml.decode() if isinstance(xml, bytes) else xml) == HEADER_XML
        assert ds.number_of_acquisitions() == len(acqs)
        for i, ref in enumerate(acqs):
            got = ds.read_acquisition(i)
            assert bytes(got.getHead()) == bytes(ref.getHead())
            assert got.data.dtype == np.complex64
            assert got.data.tobytes() == ref.data.tobytes()
        assert ds.number_of_waveforms() == 1
        assert np.array_equal(ds.read_waveform(0).data, make_waveform(0).data)
        assert ds.number_of_images("images_2") == 1
        assert np.array_equal(ds.read_image("images_2", 0).data, make_image(0).data)
    finally:
        ds.close()


def test_existing_file_needs_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    path.write_bytes(b"old")
    runner = ChainRunner(recorder_spec(path), emit=lambda m: None, header=HEADER)
    with pytest.raises(ConfigError, match=r"gadget 'rec': key 'path'.*exists"):
        runner.start()
    runner = ChainRunner(recorder_spec(path, overwrite=True), emit=lambda m: None, header=HEADER)
    runner.start()
    runner.submit(make_acquisition(0))
    assert runner.close(timeout=10)
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=False) as ds:
        assert ds.number_of_acquisitions() == 1


def test_abort_keeps_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "a.h5"
    passed = threading.Semaphore(0)
    runner = ChainRunner(recorder_spec(path), emit=lambda m: passed.release(), header=HEADER)
    runner.start()
    for i in range(3):
        runner.submit(make_acquisition(i))
    for _ in range(3):
        assert passed.acquire(timeout=10)
    runner.abort("client vanished")
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=False) as ds:
        assert ds.number_of_acquisitions() == 3
