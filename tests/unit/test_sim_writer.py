"""ISMRMRD output: HDF5 dataset, schema-valid XML header, flags and counters, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import ismrmrd
import numpy as np
import pytest
import xmlschema

from simulator.acquisitions import flag_bit
from simulator.config import SimConfig
from simulator.writer import write_subject
from simulator.xml_header import header_xml

SMALL = SimConfig(
    nx=56,
    ny=48,
    fov_x_mm=175.0,
    fov_y_mm=150.0,
    n_phases=4,
    n_coils=6,
    n_calib=8,
    n_noise_readouts=8,
)
SCHEMA = Path("/usr/share/ismrmrd/schema/ismrmrd.xsd")  # Debian/Ubuntu package ismrmrd-schema


def _read_all(path: Path) -> tuple[str, list[ismrmrd.Acquisition]]:
    """XML header and every acquisition, through ismrmrd.Dataset.

    ``read_acquisition`` costs ~7 ms per record, so records are read in one
    h5py call and rebuilt with ``ismrmrd.Acquisition`` exactly as it does.
    """
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        xml = dset.read_xml_header()
        n = dset.number_of_acquisitions()
        first, last = dset.read_acquisition(0), dset.read_acquisition(n - 1)
        records = dset._dataset["data"][:]
    finally:
        dset.close()
    acqs = []
    for rec in records:
        a = ismrmrd.Acquisition(rec["head"])
        a.data[:] = rec["data"].view(np.complex64).reshape(a.active_channels, a.number_of_samples)
        acqs.append(a)
    assert acqs[0] == first and acqs[-1] == last
    return xml.decode() if isinstance(xml, bytes) else str(xml), acqs


def _digest(xml: str, acqs: list[ismrmrd.Acquisition]) -> str:
    h = hashlib.sha256(xml.encode())
    for a in acqs:
        h.update(bytes(a.getHead()))
        h.update(a.data.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    "ordering,mask_kind", [("linear", "equispaced"), ("centre-out", "variable_density")]
)
def test_dataset_flags_counters_and_header(tmp_path: Path, ordering: str, mask_kind: str) -> None:
    cfg = SimConfig(**{**SMALL.__dict__, "ordering": ordering, "mask_kind": mask_kind, "accel": 3})
    path = write_subject(7, 3, cfg, tmp_path)
    xml, acqs = _read_all(path)
    hdr = ismrmrd.xsd.CreateFromDocument(xml)
    enc = hdr.encoding[0]
    assert enc.encodedSpace.matrixSize.x == 2 * cfg.nx and enc.reconSpace.matrixSize.x == cfg.nx
    assert enc.parallelImaging.accelerationFactor.kspace_encoding_step_1 == 3
    assert hdr.acquisitionSystemInformation.receiverChannels == cfg.n_coils
    assert enc.encodingLimits.slice.maximum == cfg.n_slices - 1
    truth = np.load(tmp_path / "subject_0000007_truth.npz")
    meta = json.loads((tmp_path / "subject_0000007_truth.json").read_text())
    mask, order = truth["mask"], truth["order"]
    assert truth["labels"].shape == (cfg.n_phases, cfg.n_slices, cfg.ny, cfg.nx)
    assert (
        meta["es_phase"] > 0 and meta["seed"] == 3 and set(meta["phenotypes"]) >= {"LVEF", "RVEF"}
    )

    noise = acqs[: cfg.n_noise_readouts]
    assert all(a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) for a in noise)
    imaging = acqs[cfg.n_noise_readouts :]
    assert not any(a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) for a in imaging)
    assert len(imaging) == cfg.n_slices * cfg.n_phases * order.size
    calib = np.zeros(cfg.ny, dtype=bool)
    calib[cfg.ny // 2 - cfg.n_calib // 2 : cfg.ny // 2 + cfg.n_calib // 2] = True
    for n, a in enumerate(acqs):
        assert a.scan_counter == n and a.number_of_samples == 2 * cfg.nx
        assert a.active_channels == a.available_channels == cfg.n_coils
        assert a.center_sample == cfg.nx and a.discard_pre == a.discard_post == 0
        assert a.sample_time_us == pytest.approx(cfg.dwell_time_us)
    for n, a in enumerate(imaging):
        buf, j = divmod(n, order.size)
        s, p = divmod(buf, cfg.n_phases)
        assert (a.idx.slice, a.idx.phase, a.idx.kspace_encode_step_1) == (s, p, order[j])
        assert a.is_flag_set(ismrmrd.ACQ_FIRST_IN_SLICE) == (j == 0)
        assert a.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE) == (j == order.size - 1)
        assert a.is_flag_set(ismrmrd.ACQ_LAST_IN_PHASE) == (j == order.size - 1)
        ky = a.idx.kspace_encode_step_1
        is_cal = a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) or a.is_flag_set(
            ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING
        )
        assert is_cal == calib[ky] and mask[ky]
        assert a.is_flag_set(ismrmrd.ACQ_LAST_IN_MEASUREMENT) == (n == len(imaging) - 1)
        assert a.position[2] == pytest.approx(cfg.slice_positions_mm()[s])
    if ordering == "centre-out":
        assert abs(int(order[0]) - cfg.ny // 2) <= 1
    assert flag_bit(ismrmrd.ACQ_LAST_IN_MEASUREMENT) == 1 << 24


def test_xml_header_validates_against_schema() -> None:
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} missing: apt-get install -y ismrmrd-schema")
    schema = xmlschema.XMLSchema(str(SCHEMA))
    for cfg in (SimConfig(), SMALL):
        schema.validate(header_xml(cfg, 12, 1.9, 80.0, 178.0))


def test_same_subject_same_bytes(tmp_path: Path) -> None:
    a = write_subject(9, 1, SMALL, tmp_path / "a")
    b = write_subject(9, 1, SMALL, tmp_path / "b")
    assert _digest(*_read_all(a)) == _digest(*_read_all(b))
    ta, tb = (
        np.load(tmp_path / "a/subject_0000009_truth.npz"),
        np.load(tmp_path / "b/subject_0000009_truth.npz"),
    )
    for key in ta.files:
        assert ta[key].tobytes() == tb[key].tobytes(), key
    c = write_subject(9, 2, SMALL, tmp_path / "c")
    assert _digest(*_read_all(a)) != _digest(*_read_all(c))


def test_cli_writes_subjects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kmtr_stream.cli import main

    rc = main(
        [
            "simulate",
            "--out",
            str(tmp_path),
            "--subjects",
            "2",
            "--first-id",
            "5",
            "--phases",
            "2",
            "--coils",
            "2",
            "--accel",
            "8",
            "--diagnosis",
            "HCM",
        ]
    )
    assert rc == 0
    meta = json.loads((tmp_path / "subject_0000006_truth.json").read_text())
    assert meta["diagnosis"] == "HCM" and meta["scan"]["config"]["accel"] == 8
    assert (tmp_path / "subject_0000005.h5").exists()
    assert "wrote 2 subjects" in capsys.readouterr().out
    assert main(["simulate"]) == 2
