"""Intensity normalisation of a slice's k-space (pure math).

The network must see identically scaled input in training and in the chain,
so the simulator's dataset writer and the slice buffer both call
``normalise_kspace``. The scale is the root-mean-square magnitude of the
k-space centre line (``ky = center``) over coils and kx: that line is always
acquired (it lies in every calibration region), so the scale does not depend
on the undersampling pattern or on how many lines a progressive emission
used. Where the centre line is missing, the RMS over all acquired lines is
used instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kmtr_stream.kspace.xp import get_array_module


def kspace_scale(kspace: Any, mask: Any, center_line: int) -> float:
    """Normalisation scale of ``(coils, ky, kx)`` k-space with ``(ky,)`` bool mask.

    Returns:
        RMS magnitude of line ``center_line`` if acquired, else of all acquired
        lines; 1.0 when nothing was acquired or everything is zero.
    """
    xp = get_array_module(kspace)
    mask_h = np.asarray(mask.get() if hasattr(mask, "get") else mask, dtype=bool)
    if 0 <= center_line < mask_h.shape[0] and mask_h[center_line]:
        sel = kspace[:, center_line, :]
    elif mask_h.any():
        sel = kspace[:, xp.asarray(np.flatnonzero(mask_h)), :]
    else:
        return 1.0
    rms = float(xp.sqrt(xp.mean(xp.abs(sel).astype(xp.float64) ** 2)))
    return rms if rms > 0.0 and np.isfinite(rms) else 1.0


def normalise_kspace(kspace: Any, mask: Any, center_line: int, out: Any = None) -> Any:
    """``kspace / kspace_scale(kspace, mask, center_line)`` as complex64.

    Args:
        kspace: ``(coils, ky, kx)`` complex k-space (NumPy or CuPy).
        mask: ``(ky,)`` bool, True where a line was acquired.
        center_line: ky index of the k-space centre (header ``kspace_encoding_step_1.center``).
        out: optional complex64 array of the same shape to write into (may be ``kspace``).

    Returns:
        ``(coils, ky, kx)`` complex64 normalised k-space.
    """
    xp = get_array_module(kspace)
    inv = np.float32(1.0 / kspace_scale(kspace, mask, center_line))
    if out is None:
        return (kspace * inv).astype(xp.complex64)
    xp.multiply(kspace, inv, out=out)
    return out
