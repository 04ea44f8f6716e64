"""MRD label images and slice results of the inference gadgets.

A label image is an ``ismrmrd.Image`` of int16 ACDC labels (0 background,
1 RV cavity, 2 LV myocardium, 3 LV cavity), ``(ny, nx)`` with x along the
readout (``read_dir``) and y along the phase encoding (``phase_dir``). It
carries the geometry and time stamps of its slice's acquisitions (the header
of the k-space centre line, ``SliceKSpace.acquisition``): position, read,
phase and slice directions, patient table position, acquisition and
physiology time stamps, measurement uid, counters; the field of view is the
label grid's extent (x, y) and the slice thickness, so DICOM converters place
it on the cine it came from. Its ISMRMRD meta attributes (``META`` names) say
what it is and how it was made; the subject aggregation gadget adds the
areas and, on the image that completes the subject, the subject's results.
"""

from __future__ import annotations

import time
from typing import Any

import ismrmrd
import numpy as np

from kmtr_stream.cardiac import slice_offset_mm
from kmtr_stream.conventions import PHENOTYPE_UNITS
from kmtr_stream.messages import SliceKSpace, SliceResult

#: Prefix of the k-MTR meta attributes.
PREFIX = "KMTR_"
LABELS_COMMENT = "ACDC labels: 0 background, 1 RV cavity, 2 LV myocardium, 3 LV cavity"
#: Meta attributes of every label image (besides ``KMTR_TimingMs_<name>`` per timing).
META_NAMES = (
    "DataRole", "ImageComments", "ImageProcessingHistory", "WindowCenter", "WindowWidth",
    f"{PREFIX}Method", f"{PREFIX}LinesUsed", f"{PREFIX}LinesEncoded", f"{PREFIX}Final",
    f"{PREFIX}Trigger",
)


def _fmt(value: Any) -> str:
    """A meta value as text (floats with 6 significant digits, booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def label_fov_mm(header: Any, shape: tuple[int, int],
                 voxel_mm: tuple[float, float, float]) -> tuple[float, float, float]:
    """``(x, y, slice thickness)`` in mm of a ``(ny, nx)`` label grid.

    x and y are the grid's own extent (its voxel size times its size: the
    recon space, or the model grid after ``model_grid``; both centred where the
    acquisition is). The thickness is the header's recon space z (``voxel_mm``
    z is the slice spacing the volumes use), else ``voxel_mm`` z.
    """
    ny, nx = shape
    x, y = nx * float(voxel_mm[0]), ny * float(voxel_mm[1])
    try:
        space = header.encoding[0].reconSpace
        thickness = float(space.fieldOfView_mm.z) / max(int(space.matrixSize.z or 1), 1)
    except (AttributeError, IndexError, TypeError, ValueError):
        thickness = float(voxel_mm[2])
    return x, y, thickness


def label_image(
    msg: SliceKSpace,
    labels: np.ndarray,
    *,
    image_index: int,
    series: int,
    timings_ms: dict[str, float],
    method: str,
) -> ismrmrd.Image:
    """The MRD image of one slice's labels, with its acquisitions' geometry and meta.

    Args:
        msg: the slice the labels belong to (counters, geometry, header).
        labels: ``(ny, nx)`` int16 label map.
        image_index: running image index of the series.
        series: image series index.
        timings_ms: named latencies in ms (``TimingMs_<name>`` attributes).
        method: ``KMTR_Method`` ("k-MTR" or "recon-then-analyze").
    """
    data = np.ascontiguousarray(labels, dtype=np.int16)
    ny, nx = data.shape
    props = {
        "data_type": ismrmrd.DATATYPE_SHORT,
        "channels": 1,
        "matrix_size": (nx, ny, 1),
        "field_of_view": label_fov_mm(msg.header, (ny, nx), msg.voxel_size_mm),
        "image_type": ismrmrd.IMTYPE_MAGNITUDE,
        "slice": int(msg.slice),
        "phase": int(msg.phase),
        "repetition": int(msg.repetition),
        "image_index": int(image_index),
        "image_series_index": int(series),
    }
    if msg.acquisition is not None:
        # ismrmrd's own copy: position, directions, table position, time stamps, counters.
        head = ismrmrd.ImageHeader.from_acquisition(msg.acquisition, **props)
        head.version = 1  # the image format's version, not the acquisition's
    else:
        head = ismrmrd.ImageHeader(version=1, **props)
    img = ismrmrd.Image(head, data=data[None, None])
    n_ky = int(msg.mask.shape[0])  # NumPy or CuPy: only the shape is read
    meta = ismrmrd.Meta({
        "DataRole": "Segmentation",
        "ImageComments": f"{method} segmentation ({LABELS_COMMENT}); "
                         f"{msg.lines_used} of {n_ky} lines",
        "ImageProcessingHistory": ["KMTR"],
        "WindowCenter": "2",
        "WindowWidth": "4",
        f"{PREFIX}Method": method,
        f"{PREFIX}LinesUsed": _fmt(int(msg.lines_used)),
        f"{PREFIX}LinesEncoded": _fmt(n_ky),
        f"{PREFIX}Final": _fmt(bool(msg.final)),
        f"{PREFIX}Trigger": str(msg.trigger),
    })
    for name, value in timings_ms.items():
        meta[f"{PREFIX}TimingMs_{name}"] = _fmt(float(value))
    img.meta = meta
    return img


def add_meta(img: ismrmrd.Image, items: dict[str, Any]) -> None:
    """Add (or replace) meta attributes of ``img``; values as ``_fmt`` writes them."""
    meta = img.meta
    for key, value in items.items():
        meta[key] = [_fmt(v) for v in value] if isinstance(value, list) else _fmt(value)
    img.meta = meta


def slice_meta(body: dict[str, Any]) -> dict[str, Any]:
    """Meta attributes of a slice result body: areas in mm^2 and, when scored, the OOD score."""
    out: dict[str, Any] = {
        f"{PREFIX}AreaMm2_{k}": float(v) for k, v in body.get("areas_mm2", {}).items()
    }
    if body.get("ood_score") is not None:
        out[f"{PREFIX}OODScore"] = float(body["ood_score"])
    if body.get("flags"):
        out[f"{PREFIX}Flags"] = [str(f) for f in body["flags"]]
    return out


def _unit_suffix(unit: str) -> str:
    return {"%": "percent"}.get(unit, unit)


def subject_meta(body: dict[str, Any]) -> dict[str, Any]:
    """Meta attributes of a subject result body.

    ``KMTR_Phenotype_<name>_<unit>`` (network), ``KMTR_PhenotypeSeg_<name>_<unit>``
    (from the segmentation), ``KMTR_Diagnosis``, ``KMTR_Probability_<class>``,
    ``KMTR_EDPhase``, ``KMTR_ESPhase``, ``KMTR_MissingSlicePhases``,
    ``KMTR_RefusedSlicePhases``, ``KMTR_Flagged`` and ``KMTR_Flags`` (validation) and,
    when the predictor scores it, ``KMTR_OOD_<score|threshold|flagged>``.
    """
    units = body.get("phenotype_units", PHENOTYPE_UNITS)
    out: dict[str, Any] = {
        f"{PREFIX}EDPhase": int(body["ed_phase"]),
        f"{PREFIX}ESPhase": int(body["es_phase"]),
        f"{PREFIX}MissingSlicePhases": int(body.get("n_missing", len(body.get("missing", [])))),
        f"{PREFIX}RefusedSlicePhases": len(body.get("refused", [])),
        f"{PREFIX}Flagged": bool(body.get("flagged", False)),
    }
    if body.get("flags"):
        out[f"{PREFIX}Flags"] = [str(f) for f in body["flags"]]
    for key, source in (("Phenotype", "phenotypes"), ("PhenotypeSeg",
                                                      "phenotypes_from_segmentation")):
        for name, value in body.get(source, {}).items():
            out[f"{PREFIX}{key}_{name}_{_unit_suffix(str(units.get(name, '')))}"] = float(value)
    diagnosis = body.get("diagnosis")
    if diagnosis:
        out[f"{PREFIX}Diagnosis"] = str(diagnosis["class"])
        for cls, p in diagnosis["probabilities"].items():
            out[f"{PREFIX}Probability_{cls}"] = float(p)
    for key, value in (body.get("ood") or {}).items():
        out[f"{PREFIX}OOD_{key}"] = value
    return out


def slice_result(
    msg: SliceKSpace,
    labels: np.ndarray,
    latent: np.ndarray,
    timings_ms: dict[str, float],
) -> SliceResult:
    """SliceResult of ``msg``; adds "post_last_line" (ms since the last line arrived) when known."""
    timings = dict(timings_ms)
    if msg.t_last_line_ns:
        timings["post_last_line"] = (time.perf_counter_ns() - msg.t_last_line_ns) / 1e6
    return SliceResult(
        slice=int(msg.slice),
        phase=int(msg.phase),
        repetition=int(msg.repetition),
        n_slices=int(msg.n_slices),
        n_phases=int(msg.n_phases),
        labels=labels,
        latent=latent,
        lines_used=int(msg.lines_used),
        final=bool(msg.final),
        last_in_measurement=bool(msg.last_in_measurement),
        voxel_size_mm=(float(msg.voxel_size_mm[0]), float(msg.voxel_size_mm[1]),
                       float(msg.voxel_size_mm[2])),
        timings_ms=timings,
        flags=tuple(msg.flags),
        slice_offset_mm=slice_offset_mm(msg.acquisition),
    )
