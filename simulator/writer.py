"""Write simulated scans: ISMRMRD HDF5 datasets plus ground-truth sidecars.

Per subject ``<out>/subject_<id>.h5`` (ISMRMRD dataset "dataset": XML header
and acquisitions in streaming order), ``subject_<id>_truth.npz`` (``labels``
``(phases, slices, ny, nx)`` uint8, ``images`` the noise-free complex phantom
``(phases, slices, ny, nx)``, ``mask`` ``(ky,)`` bool, ``order`` ``(lines,)``
int64, ``noise_cov`` ``(coils, coils)``) and ``subject_<id>_truth.json``
(phenotypes, class, BSA, ED/ES phase, seed, scan settings, phantom parameters).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import ismrmrd
import numpy as np

from kmtr_stream.ismrmrd_bulk import append_acquisitions
from simulator.config import SimConfig
from simulator.scan import ScanData, simulate_scan


def subject_stem(subject_id: int) -> str:
    """File name stem of one subject's outputs."""
    return f"subject_{subject_id:07d}"


def write_scan(scan: ScanData, cfg: SimConfig, out_dir: str | Path) -> Path:
    """Write one scan's HDF5 dataset and sidecars; returns the ``.h5`` path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = subject_stem(scan.subject.params.subject_id)
    h5 = out / f"{stem}.h5"
    h5.unlink(missing_ok=True)
    dset = ismrmrd.Dataset(str(h5), "dataset", create_if_needed=True)
    try:
        dset.write_xml_header(scan.xml(cfg).encode())
        n_acq = append_acquisitions(dset, list(scan.acquisitions(cfg)))
    finally:
        dset.close()
    np.savez(  # uncompressed: zlib cost more time than the few MB it saved
        out / f"{stem}_truth.npz",
        labels=scan.subject.labels,
        images=scan.images,
        mask=scan.plan.mask,
        order=scan.plan.order,
        noise_cov=scan.setup.noise_cov,
    )
    meta = scan.subject.ground_truth_json()
    meta["scan"] = {
        "n_acquisitions": n_acq,
        "n_noise_readouts": int(scan.noise.shape[0]),
        "lines_per_buffer": int(scan.plan.order.size),
        "config": asdict(cfg),
    }
    (out / f"{stem}_truth.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return h5


def write_subject(
    subject_id: int, seed: int, cfg: SimConfig, out_dir: str | Path, diagnosis: int | None = None
) -> Path:
    """Simulate and write one subject; returns the ``.h5`` path."""
    return write_scan(simulate_scan(subject_id, seed, cfg, diagnosis), cfg, out_dir)
