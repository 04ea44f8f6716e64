"""Sizes and geometry read from a parsed ISMRMRD XML header (pure functions).

All functions take ``ismrmrd.xsd.ismrmrdHeader`` (or None) and use its first
encoding, as the project's streams have one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _limit(limits: Any, name: str) -> Any:
    return getattr(limits, name, None) if limits is not None else None


def _count(limit: Any) -> int:
    """Number of counter values of an encoding limit (1 when absent)."""
    if limit is None or limit.maximum is None:
        return 1
    return int(limit.maximum) + 1


def limit_count(limits: Any, name: str) -> int:
    """Counter values allowed by encoding limit ``name`` (1 when the header has none)."""
    return _count(_limit(limits, name))


@dataclass(frozen=True)
class EncodingGeometry:
    """What the k-space gadgets need from the header.

    Attributes:
        encoded_x: encoded-space matrix size x (readout samples, oversampled).
        recon_x: recon-space matrix size x.
        n_ky: ky lines (max of encoded matrix y and ``kspace_encoding_step_1`` limit + 1).
        center_line: ky index of the k-space centre.
        n_slices: slices in the measurement.
        n_phases: cardiac phases in the measurement.
        n_repetitions: repetitions in the measurement.
        voxel_size_mm: ``(dx, dy, dz)`` of the recon grid; dz is the slice spacing
            (user parameter ``slice_spacing_mm``, as volumes are computed) or, where the
            header has none, the slice thickness (recon FOV z).
        expect_calibration: the header declares a parallel-imaging calibration region.
        receiver_noise_bandwidth: relative receiver noise bandwidth from
            ``acquisitionSystemInformation``; None when the header has none (the
            prewhitening gadget then uses its own fallback parameter).
    """

    encoded_x: int
    recon_x: int
    n_ky: int
    center_line: int
    n_slices: int
    n_phases: int
    n_repetitions: int
    voxel_size_mm: tuple[float, float, float]
    expect_calibration: bool
    receiver_noise_bandwidth: float | None


#: Name of the ``userParameterDouble`` that carries the slice spacing in mm.
SLICE_SPACING_PARAM = "slice_spacing_mm"


def user_parameter_double(header: Any, name: str) -> float | None:
    """Value of the header's ``userParameterDouble`` called ``name``, or None."""
    up = getattr(header, "userParameters", None)
    for p in getattr(up, "userParameterDouble", None) or []:
        if getattr(p, "name", None) == name:
            return float(p.value)
    return None


def encoding_geometry(header: Any, slice_spacing_mm: float = 0.0) -> EncodingGeometry:
    """Read ``EncodingGeometry`` from a parsed header.

    Args:
        header: parsed ``ismrmrdHeader``.
        slice_spacing_mm: dz to use when > 0, overriding the header.

    Raises:
        ValueError: the header has no encoding section.
    """
    if header is None or not getattr(header, "encoding", None):
        raise ValueError("ISMRMRD header has no encoding section")
    enc = header.encoding[0]
    lim = enc.encodingLimits
    e1 = _limit(lim, "kspace_encoding_step_1")
    n_ky = max(int(enc.encodedSpace.matrixSize.y), _count(e1))
    center = int(e1.center) if e1 is not None and e1.center is not None else n_ky // 2
    rs = enc.reconSpace
    fov, mat = rs.fieldOfView_mm, rs.matrixSize
    dz = slice_spacing_mm if slice_spacing_mm > 0 else user_parameter_double(
        header, SLICE_SPACING_PARAM
    )
    voxel = (
        float(fov.x) / max(int(mat.x), 1),
        float(fov.y) / max(int(mat.y), 1),
        float(dz) if dz else float(fov.z) / max(int(mat.z or 1), 1),
    )
    pi = getattr(enc, "parallelImaging", None)
    mode = getattr(pi, "calibrationMode", None) if pi is not None else None
    mode_name = str(getattr(mode, "value", mode) or "").lower()
    expect_calib = mode_name in ("embedded", "interleaved", "separate")
    asi = getattr(header, "acquisitionSystemInformation", None)
    rnbw = getattr(asi, "relativeReceiverNoiseBandwidth", None) if asi is not None else None
    return EncodingGeometry(
        encoded_x=int(enc.encodedSpace.matrixSize.x),
        recon_x=int(rs.matrixSize.x),
        n_ky=n_ky,
        center_line=center,
        n_slices=_count(_limit(lim, "slice")),
        n_phases=_count(_limit(lim, "phase")),
        n_repetitions=_count(_limit(lim, "repetition")),
        voxel_size_mm=voxel,
        expect_calibration=expect_calib,
        receiver_noise_bandwidth=float(rnbw) if rnbw else None,
    )
