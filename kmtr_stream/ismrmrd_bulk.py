"""Many acquisitions at a time in and out of ISMRMRD HDF5 datasets.

``ismrmrd.Dataset.append_acquisition`` grows the HDF5 dataset by one record
per call and ``read_acquisition`` reads one record three times, about 5-7 ms
each here. These read and write the same compound records
(``ismrmrd.hdf5.acquisition_dtype``) a block at a time, so files stay
interchangeable with every ISMRMRD reader and writer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import ismrmrd
import numpy as np

_ACQ_DTYPE = ismrmrd.hdf5.acquisition_dtype
_HEAD_DTYPE = ismrmrd.hdf5.acquisition_header_dtype
_HEAD_BYTES = _HEAD_DTYPE.itemsize


def append_acquisitions(dset: ismrmrd.Dataset, acquisitions: Sequence[ismrmrd.Acquisition]) -> int:
    """Append ``acquisitions`` with one resize, as ``append_acquisition`` lays them out.

    Returns:
        Number of acquisitions written.
    """
    n = len(acquisitions)
    if n == 0:
        return 0
    records = np.empty((n,), dtype=_ACQ_DTYPE)
    for i, acq in enumerate(acquisitions):
        # Raw bytes of the ctypes header (getHead() would deep-copy it first).
        records[i]["head"] = np.frombuffer(bytes(acq._head), dtype=_HEAD_DTYPE)[0]
        records[i]["data"] = np.ascontiguousarray(acq.data, np.complex64).view(np.float32).ravel()
        records[i]["traj"] = np.ascontiguousarray(acq.traj, np.float32).ravel()
    dset._file.require_group(dset._dataset_name)
    group = dset._file[dset._dataset_name]
    if "data" in group:
        start = group["data"].shape[0]
        group["data"].resize(start + n, axis=0)
    else:
        start = 0
        group.create_dataset("data", (n,), maxshape=(None,), dtype=_ACQ_DTYPE)
    group["data"][start : start + n] = records
    return n


def read_acquisitions(dset: ismrmrd.Dataset, start: int, stop: int) -> list[ismrmrd.Acquisition]:
    """Acquisitions ``start`` to ``stop - 1``, read in one HDF5 access.

    Equal, header and arrays, to ``dset.read_acquisition(i)`` for each ``i``.
    """
    records = dset._dataset["data"][start:stop]
    heads = np.ascontiguousarray(records["head"]).view(np.uint8)
    out = []
    for i, rec in enumerate(records):
        head = ismrmrd.AcquisitionHeader.from_buffer_copy(heads, i * _HEAD_BYTES)
        ns, nc, dims = head.number_of_samples, head.active_channels, head.trajectory_dimensions
        data = np.asarray(rec["data"], np.float32).view(np.complex64).reshape(nc, ns)
        traj = np.asarray(rec["traj"], np.float32).reshape(ns, dims)
        out.append(ismrmrd.Acquisition(head, data, traj))
    return out


def iter_acquisitions(dset: ismrmrd.Dataset, block: int = 256) -> Iterator[ismrmrd.Acquisition]:
    """Every acquisition of ``dset`` in order, read ``block`` at a time."""
    n = dset.number_of_acquisitions()
    for start in range(0, n, block):
        yield from read_acquisitions(dset, start, min(start + block, n))


class BlockAppender:
    """Collects acquisitions and appends them to ``dset`` ``block`` at a time.

    ``flush()`` writes what is collected; call it before closing the dataset.
    """

    def __init__(self, dset: ismrmrd.Dataset, block: int = 256) -> None:
        self.dset = dset
        self.block = block
        self._pending: list[ismrmrd.Acquisition] = []

    def add(self, acq: ismrmrd.Acquisition) -> None:
        """Collect ``acq``; a full block is written at once."""
        self._pending.append(acq)
        if len(self._pending) >= self.block:
            self.flush()

    def flush(self) -> None:
        """Write every collected acquisition."""
        append_acquisitions(self.dset, self._pending)
        self._pending = []
