"""Per-buffer coil compression and intensity normalisation, as the training data has them.

The network must see identically scaled input in training and in the chain.
The simulator's dataset writer (``simulator.kspace.virtual_coil_buffer``) and
the slice buffer apply the same steps to each (slice, phase) buffer:

1. optionally compress the coils with the SVD matrix of the buffer's own
   calibration region (central ``n_calib`` ky lines, every kx);
2. divide by the RMS magnitude of (virtual) coil 0 over that region.

The calibration region is always acquired, so the scale does not depend on
the undersampling pattern or on how many lines a progressive emission used.
``compress_and_normalise`` reproduces ``virtual_coil_buffer`` bit for bit on
NumPy (same operations in the same precision) and runs on CuPy unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kmtr_stream.kspace.coil_compression import apply_compression, compression_matrix
from kmtr_stream.kspace.xp import get_array_module


def calibration_slice(n_ky: int, n_calib: int, center: int | None = None) -> slice:
    """ky range of the centred calibration region (``center`` defaults to ``n_ky // 2``)."""
    c = n_ky // 2 if center is None else center
    start = c - max(n_calib, 1) // 2
    return slice(start, start + max(n_calib, 1))


def calibration_scale(kspace: Any, region: slice) -> float:
    """RMS magnitude of coil 0 of ``(coils, ky, kx)`` k-space over ky ``region``; 1.0 if zero."""
    xp = get_array_module(kspace)
    cal = kspace[0, region, :]
    scale = float(xp.sqrt(xp.mean(xp.abs(cal) ** 2)))
    return scale if scale > 0.0 and np.isfinite(scale) else 1.0


def normalise_kspace(kspace: Any, region: slice, out: Any = None) -> Any:
    """``kspace / calibration_scale(kspace, region)``.

    Args:
        kspace: ``(coils, ky, kx)`` complex64 k-space (NumPy or CuPy).
        region: ky range of the calibration region (``calibration_slice``).
        out: optional array of the same shape to write into (may be ``kspace``).

    Returns:
        ``(coils, ky, kx)`` complex64 normalised k-space.
    """
    xp = get_array_module(kspace)
    scale = np.float32(calibration_scale(kspace, region))
    if out is None:
        return kspace / scale
    xp.divide(kspace, scale, out=out)
    return out


def compress_and_normalise(kspace: Any, n_virtual: int, region: slice) -> tuple[Any, Any, float]:
    """Compress ``(coils, ky, kx)`` k-space with its calibration region's SVD, then normalise.

    Returns:
        ``(n_virtual, ky, kx)`` complex64 normalised k-space, the ``(n_virtual, coils)``
        compression matrix and the scale divided out.
    """
    xp = get_array_module(kspace)
    matrix = compression_matrix(kspace[:, region, :], n_virtual, xp)
    virtual = apply_compression(matrix, kspace).astype(xp.complex64)
    scale = calibration_scale(virtual, region)
    return virtual / np.float32(scale), matrix, scale
