"""Cardiac measures from label maps (pure NumPy): areas, volumes, ED/ES choice, phenotypes.

The one place these are defined: the simulator's ground truth, the chain's
subject aggregation (segmentation-derived phenotypes) and the model's subject
predictor (which ED/ES latents go to the subject head) all call it, so one
subject result never mixes phases chosen by two rules.

ED/ES rule: end-diastole is the given phase (by default phase 0, as the
simulator and the ACDC protocol acquire it); end-systole is the other phase
with a result whose LV cavity, summed over slices, is smallest (ties: the
lower phase).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from kmtr_stream.conventions import MYOCARDIAL_DENSITY_G_PER_ML, PHENOTYPES, Label

#: Structures measured, by name: LV cavity, RV cavity, LV myocardium.
STRUCTURES = (("LV", Label.LV_CAVITY), ("RV", Label.RV_CAVITY), ("MYO", Label.LV_MYOCARDIUM))


def areas_mm2(labels: np.ndarray, voxel_size_mm: tuple[float, float, float]) -> dict[str, float]:
    """Segmented area of LV cavity, RV cavity and LV myocardium in one ``(ny, nx)`` label map."""
    pixel = float(voxel_size_mm[0]) * float(voxel_size_mm[1])
    return {name: float(np.count_nonzero(labels == int(lab))) * pixel for name, lab in STRUCTURES}


def slice_offset_mm(acquisition: Any) -> float | None:
    """Signed offset of a slice along its normal: ``position . slice_dir`` (mm).

    ``acquisition`` is an ``ismrmrd.AcquisitionHeader`` (or None). None when the
    header has no usable slice direction.
    """
    if acquisition is None:
        return None
    normal = np.asarray(acquisition.slice_dir, dtype=np.float64)
    norm = float(np.linalg.norm(normal))
    if not np.isfinite(norm) or norm < 1e-6:
        return None
    offset = float(np.dot(np.asarray(acquisition.position, dtype=np.float64), normal) / norm)
    return offset if np.isfinite(offset) else None


def spacing_from_offsets(offsets: Mapping[int, float]) -> float | None:
    """Slice spacing (mm) from each slice counter's offset along the normal.

    The median over neighbouring slice counters of ``|offset step| / counter
    step``; None with fewer than two slices or coincident positions (a header
    that does not fill them in).
    """
    keys = sorted(offsets)
    steps = [
        abs(offsets[b] - offsets[a]) / (b - a) for a, b in itertools.pairwise(keys)
    ]
    if not steps:
        return None
    spacing = float(np.median(steps))
    return spacing if spacing > 1e-3 else None


def lv_cavity_by_phase(results: Iterable[Any]) -> dict[int, int]:
    """LV cavity pixels per phase, summed over slices.

    Args:
        results: objects with ``phase`` and ``labels`` (``(ny, nx)`` label map),
            e.g. ``SliceResult``s.
    """
    lv: dict[int, int] = {}
    lab = int(Label.LV_CAVITY)
    for r in results:
        p = int(r.phase)
        lv[p] = lv.get(p, 0) + int(np.count_nonzero(np.asarray(r.labels) == lab))
    return lv


def end_systolic_phase(lv_by_phase: Mapping[int, float], ed_phase: int) -> int:
    """The phase other than ``ed_phase`` of smallest LV (ties: lower phase); ED if it is alone.

    Args:
        lv_by_phase: LV cavity size (any unit) of each phase that has data.
        ed_phase: the end-diastolic phase.
    """
    others = [p for p in lv_by_phase if p != ed_phase] or list(lv_by_phase)
    if not others:
        raise ValueError("no phase to choose end-systole from")
    return min(others, key=lambda p: (float(lv_by_phase[p]), p))


def choose_ed_es(results: Iterable[Any], ed_phase: int = 0) -> tuple[int, int]:
    """``(ED, ES)`` of one measurement's slice results: ED = ``ed_phase``, ES by LV cavity."""
    return ed_phase, end_systolic_phase(lv_cavity_by_phase(results), ed_phase)


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
        for name, lab in STRUCTURES
    }
    return {name: c * voxel_ml for name, c in counts.items()}


def phenotypes_from_volumes(
    lv_ml: np.ndarray, rv_ml: np.ndarray, myo_ml: np.ndarray, ed_phase: int | None = None,
    es_phase: int | None = None,
) -> dict[str, float]:
    """The nine phenotypes from per-phase volume curves.

    End-diastole is the phase of largest LV volume unless given; end-systole,
    unless given, follows ``end_systolic_phase``. LV mass is taken at end-diastole.

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
    lv_by_phase = {p: float(v) for p, v in enumerate(lv_ml)}
    es = end_systolic_phase(lv_by_phase, ed) if es_phase is None else es_phase
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
