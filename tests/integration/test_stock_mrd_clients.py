"""Stock MRD clients and tools against the MRD/TCP endpoint, over 127.0.0.1.

The client is ``stock_mrd_client``: it speaks as python-ismrmrd-server's
``client.py`` does (CONFIG_FILE ``default.xml`` unless told otherwise,
NUL-terminated text, unknown message ids fatal to its receiver). The data
comes from the C++ ``ismrmrd_generate_cartesian_shepp_logan`` (Debian package
``ismrmrd-tools``) and from the simulator; label images go through a DICOM
conversion (``scripts/mrd2dicom.py``, pydicom) and are read back.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest

from kmtr_stream.codec.parts import encode_parts
from kmtr_stream.codec.standard import STANDARD_IDS
from kmtr_stream.codec.stream import StreamReader
from kmtr_stream.ismrmrd_bulk import BlockAppender, iter_acquisitions
from kmtr_stream.messages import Text
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.mrd_server import MrdServer
from simulator.config import SimConfig
from simulator.writer import write_subject
from tests.integration.conftest import (
    REPLY_TIMEOUT_S,
    ROOT,
    make_header_xml,
    same_acquisition,
)
from tests.integration.stock_mrd_client import StockRun, run_stock_client

SHEPP_LOGAN = "ismrmrd_generate_cartesian_shepp_logan"
SHEPP_LOGAN_ARGS = ["-m", "128", "-c", "8", "-O", "2", "-a", "4", "-w", "24", "-C"]
needs_shepp_logan = pytest.mark.skipif(
    shutil.which(SHEPP_LOGAN) is None,
    reason=f"{SHEPP_LOGAN} not found: install the Debian/Ubuntu package 'ismrmrd-tools'",
)
#: The k-MTR chain on 2 shared CPU cores: generous, but a hang still fails.
KMTR_TIMEOUT_S = 300.0
CFG = SimConfig(n_phases=4, accel=4)
#: An oblique short-axis orientation and an off-centre position, as a scanner would send.
ROT = np.array([[0.8, 0.6, 0.0], [-0.36, 0.48, 0.8], [0.48, -0.64, 0.6]])
OFFSET_MM = np.array([12.5, -40.25, 7.0])


def read_acqs(path: Path) -> list[ismrmrd.Acquisition]:
    ds = ismrmrd.Dataset(str(path), "dataset", False)
    try:
        return list(iter_acquisitions(ds)) if "data" in ds.list() else []
    finally:
        ds.close()


def read_images(path: Path, group: str) -> list[ismrmrd.Image]:
    ds = ismrmrd.Dataset(str(path), "dataset", False)
    try:
        return [ds.read_image(group, i) for i in range(ds.number_of_images(group))]
    finally:
        ds.close()


@pytest.fixture(scope="module")
def server() -> Iterator[MrdServer]:
    catalog = ChainCatalog.from_paths(
        [ROOT / "configs" / "passthrough.toml", ROOT / "configs" / "kmtr.toml"]
    )
    with MrdServer(catalog, "127.0.0.1:0", close_timeout_s=KMTR_TIMEOUT_S) as srv:
        yield srv


@pytest.fixture(scope="module")
def shepp_logan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which(SHEPP_LOGAN) is None:
        pytest.skip(f"{SHEPP_LOGAN} not found: install the Debian/Ubuntu package 'ismrmrd-tools'")
    out = tmp_path_factory.mktemp("shepp") / "shepp_logan.h5"
    subprocess.run([SHEPP_LOGAN, *SHEPP_LOGAN_ARGS, "-o", str(out)], check=True,
                   capture_output=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def subject_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated subject whose readouts carry an oblique, off-centre geometry."""
    tmp = tmp_path_factory.mktemp("subject")
    plain = write_subject(3, 7, CFG, tmp)
    out = tmp / "oblique.h5"
    src = ismrmrd.Dataset(str(plain), "dataset", False)
    dst = ismrmrd.Dataset(str(out), "dataset", create_if_needed=True)
    try:
        dst.write_xml_header(src.read_xml_header())
        appender = BlockAppender(dst)
        for acq in iter_acquisitions(src):
            z = float(acq.position[2])
            acq.read_dir[:], acq.phase_dir[:], acq.slice_dir[:] = ROT[0], ROT[1], ROT[2]
            acq.position[:] = OFFSET_MM + z * ROT[2]
            acq.patient_table_position[:] = (0.0, 0.0, -1250.0)
            appender.add(acq)
        appender.flush()
    finally:
        src.close()
        dst.close()
    return out


@pytest.fixture(scope="module")
def kmtr_run(server: MrdServer, subject_file: Path,
             tmp_path_factory: pytest.TempPathFactory) -> StockRun:
    out = tmp_path_factory.mktemp("kmtr_out") / "out.h5"
    return run_stock_client(server.address, subject_file, out, config="kmtr",
                            timeout_s=KMTR_TIMEOUT_S)


def json_results(run: StockRun) -> list[dict[str, Any]]:
    return [json.loads(t) for t in run.texts if t.startswith("{")]


# -- (a) third-party data through the pass-through chain, bit for bit -------------------

@needs_shepp_logan
def test_shepp_logan_comes_back_bit_for_bit(server: MrdServer, shepp_logan: Path,
                                            tmp_path: Path) -> None:
    run = run_stock_client(server.address, shepp_logan, tmp_path / "out.h5",
                           config="passthrough")
    assert run.unknown_ids == [] and run.receiver_error is None and run.got_close
    sent, back = read_acqs(shepp_logan), read_acqs(tmp_path / "out.h5")
    assert len(sent) > 100 and len(back) == len(sent)
    assert all(same_acquisition(a, b) for a, b in zip(sent, back, strict=True))
    assert run.received == {"header": 1, "acquisition": len(sent)}


@needs_shepp_logan
def test_the_stock_default_config_name_selects_the_default_chain(
    server: MrdServer, shepp_logan: Path, tmp_path: Path
) -> None:
    run = run_stock_client(server.address, shepp_logan, tmp_path / "out.h5")  # "default.xml"
    assert run.got_close and run.texts == [] and run.unknown_ids == []
    assert run.received["acquisition"] == len(read_acqs(shepp_logan))


# -- (b) a simulated subject through the k-MTR chain ------------------------------------

def test_subject_every_label_image_and_result_is_saved(kmtr_run: StockRun,
                                                       subject_file: Path) -> None:
    run = kmtr_run
    assert run.unknown_ids == [] and run.receiver_error is None and run.got_close
    n = CFG.n_slices * CFG.n_phases
    assert run.received == {"header": 1, "image": n, "text": n + 1}
    results = json_results(run)
    assert len(results) == len(run.texts)  # every TEXT is a JSON result, none an error
    slices = [r for r in results if r["kind"] == "slice"]
    assert sorted((r["slice"], r["phase"]) for r in slices) == [
        (s, p) for s in range(CFG.n_slices) for p in range(CFG.n_phases)]
    (subject,) = [r for r in results if r["kind"] == "subject"]
    assert subject["schema_version"] == 1 and subject["missing"] == []
    images = read_images(run.out_file, "images_1")
    assert len(images) == n
    for img in images:
        assert img.data.dtype == np.int16 and set(np.unique(img.data)) <= {0, 1, 2, 3}
        meta = img.meta
        assert meta["DataRole"] == "Segmentation" and "ACDC labels" in meta["ImageComments"]
        assert int(meta["KMTR_LinesUsed"]) > 0 and meta["KMTR_Final"] == "true"
        assert float(meta["KMTR_TimingMs_network"]) > 0
        assert {"KMTR_AreaMm2_LV", "KMTR_AreaMm2_RV", "KMTR_AreaMm2_MYO"} <= set(meta)
    # The image that completed the subject carries its results, equal to the JSON ones.
    (last,) = [img for img in images if "KMTR_Diagnosis" in img.meta]
    meta = last.meta
    assert meta["KMTR_Diagnosis"] == subject["diagnosis"]["class"]
    for cls, p in subject["diagnosis"]["probabilities"].items():
        assert math.isclose(float(meta[f"KMTR_Probability_{cls}"]), p, rel_tol=1e-5)
    assert math.isclose(float(meta["KMTR_Phenotype_LVEF_percent"]),
                        subject["phenotypes"]["LVEF"], rel_tol=1e-5)
    assert math.isclose(float(meta["KMTR_Phenotype_LVEDV_mL"]),
                        subject["phenotypes"]["LVEDV"], rel_tol=1e-5)
    if "ood" in subject:
        assert meta["KMTR_OOD_flagged"] == str(subject["ood"]["flagged"]).lower()


def test_label_images_carry_their_slices_geometry(kmtr_run: StockRun,
                                                  subject_file: Path) -> None:
    acqs = [a for a in read_acqs(subject_file)
            if not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]
    by_key: dict[tuple[int, int], list[ismrmrd.Acquisition]] = {}
    for a in acqs:
        by_key.setdefault((a.idx.slice, a.idx.phase), []).append(a)
    header = ismrmrd.xsd.CreateFromDocument(
        ismrmrd.Dataset(str(subject_file), "dataset", False).read_xml_header())
    fov = header.encoding[0].reconSpace.fieldOfView_mm
    for img in read_images(kmtr_run.out_file, "images_1"):
        lines = by_key[(img.slice, img.phase)]
        centre = [a for a in lines if a.idx.kspace_encode_step_1 == CFG.ny // 2] or lines[:1]
        ref = centre[0]
        for name in ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position"):
            assert np.allclose(getattr(img, name)[:], getattr(ref, name)[:], atol=1e-5), name
        assert img.acquisition_time_stamp == ref.acquisition_time_stamp > 0
        assert img.physiology_time_stamp[0] == ref.physiology_time_stamp[0]
        assert np.allclose(img.field_of_view[:], (fov.x, fov.y, CFG.slice_thickness_mm))
        assert tuple(img.matrix_size[:]) == (CFG.nx, CFG.ny, 1)
        assert img.image_type == ismrmrd.IMTYPE_MAGNITUDE and img.image_series_index == 1
        assert img.repetition == 0 and 0 <= img.image_index < CFG.n_slices * CFG.n_phases


def test_dicom_export_has_the_acquisitions_positions_and_orientations(
    kmtr_run: StockRun, subject_file: Path, tmp_path: Path
) -> None:
    pydicom = pytest.importorskip("pydicom", reason="pip install pydicom (dev extras)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "mrd2dicom.py"), str(kmtr_run.out_file),
         str(tmp_path / "dicom")], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    files = sorted((tmp_path / "dicom").rglob("*.dcm"))
    assert len(files) == CFG.n_slices * CFG.n_phases
    position_of_slice = {a.idx.slice: np.asarray(a.position[:], np.float64)
                         for a in read_acqs(subject_file)}
    slice_of_image = {img.image_index: img.slice
                      for img in read_images(kmtr_run.out_file, "images_1")}
    worst_mm, worst_dir = 0.0, 0.0
    for path in files:
        ds = pydicom.dcmread(path)
        iop = np.asarray(ds.ImageOrientationPatient, np.float64)
        ipp = np.asarray(ds.ImagePositionPatient, np.float64)
        dy, dx = (float(v) for v in ds.PixelSpacing)
        row, col = iop[:3], iop[3:]
        centre = ipp + (ds.Columns - 1) / 2 * dx * row + (ds.Rows - 1) / 2 * dy * col
        want = position_of_slice[slice_of_image[int(ds.InstanceNumber) - 1]]
        worst_mm = max(worst_mm, float(np.abs(centre - want).max()))
        got_dirs = np.concatenate([row, col, np.cross(row, col)])
        worst_dir = max(worst_dir, float(np.abs(got_dirs - ROT.reshape(-1)).max()))
        assert math.isclose(float(ds.SliceThickness), CFG.slice_thickness_mm)
        assert math.isclose(float(ds.SliceLocation), float(want @ ROT[2]), abs_tol=0.01)
    assert worst_mm < 0.01 and worst_dir < 1e-4, (worst_mm, worst_dir)


# -- what the chain does not consume ---------------------------------------------------

def test_images_sent_to_the_kmtr_chain_get_an_error_not_an_echo(
    server: MrdServer, kmtr_run: StockRun, tmp_path: Path
) -> None:
    # The label images just received make an image-only MRD file, as a stock client sends.
    run = run_stock_client(server.address, kmtr_run.out_file, tmp_path / "back.h5",
                           config="kmtr", timeout_s=KMTR_TIMEOUT_S)
    assert run.got_close and run.unknown_ids == [] and "image" not in run.received
    (err,) = [t for t in run.texts if t.startswith("ERROR")]
    assert err.startswith("ERROR    [protocol] message #2: chain 'kmtr' does not take IMAGE")


def test_waveforms_sent_to_the_kmtr_chain_are_dropped_with_one_warning(
    server: MrdServer, tmp_path: Path
) -> None:
    cfg = SimConfig(n_slices=2, n_phases=2, accel=4)
    src = write_subject(5, 1, cfg, tmp_path / "sim")
    with_wav = tmp_path / "with_waveforms.h5"
    shutil.copy(src, with_wav)
    ds = ismrmrd.Dataset(str(with_wav), "dataset", False)
    try:
        for k in range(3):
            head = ismrmrd.WaveformHeader()
            head.channels, head.number_of_samples, head.time_stamp = 1, 4, k
            ds.append_waveform(ismrmrd.Waveform(head, np.arange(4, dtype=np.uint32)))
    finally:
        ds.close()
    run = run_stock_client(server.address, with_wav, tmp_path / "out.h5", config="kmtr",
                           send_waveforms=True, timeout_s=KMTR_TIMEOUT_S)
    assert run.got_close and run.unknown_ids == [] and "waveform" not in run.received
    warnings = [t for t in run.texts if t.startswith("WARNING")]
    assert warnings == ["WARNING  chain 'kmtr' does not use WAVEFORM messages: message #2 and "
                        "any later ones of that kind are dropped"]
    assert run.received["image"] == cfg.n_slices * cfg.n_phases  # the data was analysed


# -- errors reach stock clients as TEXT they log; msgpack only on request ---------------

@needs_shepp_logan
def test_errors_go_out_as_text_the_stock_client_logs(server: MrdServer, shepp_logan: Path,
                                                     tmp_path: Path) -> None:
    run = run_stock_client(server.address, shepp_logan, tmp_path / "out.h5", config="nope.xml")
    assert run.got_close and run.unknown_ids == [] and run.receiver_error is None
    (err,) = run.texts
    assert err.startswith("ERROR    [config] unknown chain config 'nope.xml'")


def _wire_ids(address: tuple[str, int], config: str) -> tuple[list[int], list[str]]:
    """Ids and texts a raw client gets for CONFIG_FILE, a header, a second header, CLOSE."""
    xml = make_header_xml()
    with socket.create_connection(address, timeout=REPLY_TIMEOUT_S) as sock:
        sock.sendall(struct.pack("<H", 1) + config.encode().ljust(1024, b"\0"))
        for _ in range(2):  # a second header is a protocol error
            payload = xml.encode() + b"\0"
            sock.sendall(struct.pack("<HI", 3, len(payload)) + payload)
        sock.sendall(struct.pack("<H", 4))
        reader = StreamReader.from_socket(sock)
        msgs = list(reader)
    ids = [int(encode_parts(m)[0]) for m in msgs]
    return ids, [m.text for m in msgs if isinstance(m, Text)]


def test_msgpack_error_and_results_ids_only_when_the_client_asks(server: MrdServer) -> None:
    ids, texts = _wire_ids(server.address, "passthrough")
    assert set(ids) <= STANDARD_IDS and ids[-1] == 4
    (err,) = texts
    assert err.startswith("ERROR    [protocol] message #2: a second XML header")
    ids, texts = _wire_ids(server.address, "passthrough?results=msgpack")
    assert 8 in ids and texts == []


@pytest.mark.parametrize("config, needle", [
    ("nope?results=msgpack", "unknown chain config 'nope'"),
    ("passthrough?results=json", "results='json' is not one of standard, msgpack"),
    ("passthrough?x=1", "unknown parameter 'x=1'"),
])
def test_bad_config_requests_are_answered_in_standard_text(
    server: MrdServer, config: str, needle: str
) -> None:
    ids, texts = _wire_ids(server.address, config)
    assert set(ids) <= STANDARD_IDS
    assert texts[0].startswith("ERROR    [config]") and needle in texts[0]
