"""Block reads and writes of ISMRMRD HDF5 acquisitions match ismrmrd's own, record by record."""

from __future__ import annotations

from pathlib import Path

import ismrmrd
import numpy as np

from kmtr_stream.ismrmrd_bulk import append_acquisitions, iter_acquisitions, read_acquisitions


def acquisitions(n: int) -> list[ismrmrd.Acquisition]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        coils, samples, dims = 1 + i % 4, 16 + i % 5, i % 3
        data = (rng.standard_normal((coils, samples))
                + 1j * rng.standard_normal((coils, samples))).astype(np.complex64)
        acq = ismrmrd.Acquisition.from_array(data)
        acq.resize(samples, coils, dims)
        acq.data[:] = data
        acq.traj[:] = rng.standard_normal((samples, dims)).astype(np.float32)
        acq.scan_counter = i
        acq.idx.kspace_encode_step_1 = i % 64
        acq.user_float[2] = i / 7
        out.append(acq)
    return out


def same(a: ismrmrd.Acquisition, b: ismrmrd.Acquisition) -> bool:
    return (bytes(a._head) == bytes(b._head) and np.array_equal(a.data, b.data)
            and np.array_equal(a.traj, b.traj))


def test_block_read_equals_read_acquisition(tmp_path: Path) -> None:
    acqs = acquisitions(300)
    ds = ismrmrd.Dataset(str(tmp_path / "x.h5"), "dataset", create_if_needed=True)
    for acq in acqs:
        ds.append_acquisition(acq)  # ismrmrd's own writer
    got = read_acquisitions(ds, 0, 256) + read_acquisitions(ds, 256, 300)
    theirs = [ds.read_acquisition(i) for i in (0, 1, 150, 299)]
    blocks = list(iter_acquisitions(ds, block=128))  # 128 + 128 + 44
    ds.close()
    assert len(got) == 300
    assert all(same(a, b) for a, b in zip(acqs, got, strict=True))
    assert all(same(got[i], t) for i, t in zip((0, 1, 150, 299), theirs, strict=True))
    assert len(blocks) == 300 and all(same(a, b) for a, b in zip(acqs, blocks, strict=True))


def test_block_write_reads_back_with_ismrmrd(tmp_path: Path) -> None:
    acqs = acquisitions(40)
    ds = ismrmrd.Dataset(str(tmp_path / "y.h5"), "dataset", create_if_needed=True)
    assert append_acquisitions(ds, acqs[:25]) == 25
    assert append_acquisitions(ds, acqs[25:]) == 15
    assert append_acquisitions(ds, []) == 0
    back = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    ds.close()
    assert len(back) == 40 and all(same(a, b) for a, b in zip(acqs, back, strict=True))
