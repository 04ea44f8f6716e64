"""Cardiac phenotypes from label maps (pure math, NumPy).

Used for the simulator's ground truth and for segmentation-derived volumes in
the chain, so both sides compute volumes the same way.
"""

from __future__ import annotations

import numpy as np

from kmtr_stream.conventions import MYOCARDIAL_DENSITY_G_PER_ML, PHENOTYPES, Label


def structure_volumes_ml(
    labels: np.ndarray, voxel_size_mm: tuple[float, float, float]
) -> dict[str, np.ndarray]:
    """Volume of each structure per phase.

    Args:
        labels: ``(phases, slices, ny, nx)`` integer ACDC label maps.
        voxel_size_mm: ``(dx, dy, dz)`` voxel size in mm (dz: slice spacing).

    Returns:
        Map "LV", "RV", "MYO" -> ``(phases,)`` float64 volumes in mL.
    """
    if labels.ndim != 4:
        raise ValueError(f"labels must be (phases, slices, ny, nx), got shape {labels.shape}")
    voxel_ml = float(np.prod(voxel_size_mm)) / 1000.0
    counts = {
        name: (labels == int(lab)).sum(axis=(1, 2, 3)).astype(np.float64)
        for name, lab in (
            ("LV", Label.LV_CAVITY), ("RV", Label.RV_CAVITY), ("MYO", Label.LV_MYOCARDIUM)
        )
    }
    return {name: c * voxel_ml for name, c in counts.items()}


def phenotypes_from_volumes(
    lv_ml: np.ndarray, rv_ml: np.ndarray, myo_ml: np.ndarray, ed_phase: int | None = None,
    es_phase: int | None = None,
) -> dict[str, float]:
    """The nine phenotypes from per-phase volume curves.

    End-diastole is the phase of largest LV volume and end-systole of smallest,
    unless given. LV mass is taken at end-diastole.

    Args:
        lv_ml: ``(phases,)`` LV cavity volume in mL.
        rv_ml: ``(phases,)`` RV cavity volume in mL.
        myo_ml: ``(phases,)`` LV myocardium volume in mL.
        ed_phase: end-diastolic phase index, or None to pick by LV volume.
        es_phase: end-systolic phase index, or None to pick by LV volume.

    Returns:
        Phenotype name -> value, in the units of ``conventions.PHENOTYPE_UNITS``.
    """
    ed = int(np.argmax(lv_ml)) if ed_phase is None else ed_phase
    es = int(np.argmin(lv_ml)) if es_phase is None else es_phase
    lvedv, lvesv = float(lv_ml[ed]), float(lv_ml[es])
    rvedv, rvesv = float(rv_ml[ed]), float(rv_ml[es])
    out = {
        "LVEDV": lvedv,
        "LVESV": lvesv,
        "LVSV": lvedv - lvesv,
        "LVEF": 100.0 * (lvedv - lvesv) / lvedv if lvedv > 0 else 0.0,
        "LVM": float(myo_ml[ed]) * MYOCARDIAL_DENSITY_G_PER_ML,
        "RVEDV": rvedv,
        "RVESV": rvesv,
        "RVSV": rvedv - rvesv,
        "RVEF": 100.0 * (rvedv - rvesv) / rvedv if rvedv > 0 else 0.0,
    }
    return {k: out[k] for k in PHENOTYPES}


def phenotypes_from_labels(
    labels: np.ndarray, voxel_size_mm: tuple[float, float, float],
    ed_phase: int | None = None, es_phase: int | None = None,
) -> dict[str, float]:
    """The nine phenotypes from ``(phases, slices, ny, nx)`` label maps."""
    v = structure_volumes_ml(labels, voxel_size_mm)
    return phenotypes_from_volumes(v["LV"], v["RV"], v["MYO"], ed_phase, es_phase)
