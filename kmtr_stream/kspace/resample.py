"""Resampling of Cartesian k-space onto the model's grid, in k-space (pure math).

The network is built for one grid: ``n`` samples over ``fov_mm`` per axis
(k-space samples at ``(i - n // 2) / fov_mm`` cycles/mm). An acquisition of
another matrix or field of view is mapped onto it by one linear operator per
axis, never by forming an image:

* same field of view (sample spacing within ``FOV_TOLERANCE``): crop or zero-pad
  the centred spectrum, an exact index map (the mask maps line for line);
* another field of view: band-limited (trigonometric) interpolation of the
  acquired samples at the model's k positions, restricted to the model's field of
  view and k-space extent: ``A[i, j] = 1/sqrt(n_m n_a) sum_q exp(2 pi i (k_j - k_i) x_q)``
  over the model's pixel positions ``x_q``, with acquired samples beyond the
  model's Nyquist limit dropped (they would alias).

Along ky the acquisition is undersampled. The model line ``i`` counts as acquired
when an acquired line lies within half a model line of it, and only those model
lines are kept; with the same field of view that is the plain mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Relative difference of sample spacings treated as the same field of view.
FOV_TOLERANCE = 0.005


@dataclass(frozen=True)
class AxisMap:
    """Map of one k-space axis from the acquisition onto the model grid.

    Attributes:
        matrix: ``(n_model, n_acq)`` complex64 operator, or None for an index map.
        index: ``(n_model,)`` int64 acquired sample of each model sample (-1: zero),
            for the index map; for the interpolating map, the nearest acquired sample
            within half a model sample (-1: none).
    """

    matrix: np.ndarray | None
    index: np.ndarray


def axis_positions(n: int, fov_mm: float, center: int | None = None) -> np.ndarray:
    """``(n,)`` k positions in cycles/mm of samples ``0..n-1`` with DC at ``center``."""
    c = n // 2 if center is None else center
    return (np.arange(n) - c) / float(fov_mm)


def axis_map(
    n_acq: int, fov_acq_mm: float, n_model: int, fov_model_mm: float, center: int | None = None
) -> AxisMap:
    """The operator taking acquired samples of one axis to the model's samples.

    Args:
        n_acq: acquired samples along the axis.
        fov_acq_mm: field of view of the acquisition along the axis.
        n_model: model samples.
        fov_model_mm: model field of view.
        center: acquired sample that holds DC (``n_acq // 2`` when None).

    Returns:
        An ``AxisMap``.
    """
    if n_acq < 1 or n_model < 1 or fov_acq_mm <= 0 or fov_model_mm <= 0:
        raise ValueError(
            f"axis sizes and fields of view must be positive, got n_acq={n_acq}, "
            f"fov_acq_mm={fov_acq_mm}, n_model={n_model}, fov_model_mm={fov_model_mm}"
        )
    c = n_acq // 2 if center is None else int(center)
    if abs(fov_acq_mm - fov_model_mm) <= FOV_TOLERANCE * fov_model_mm:
        index = np.arange(n_model) - n_model // 2 + c
        index[(index < 0) | (index >= n_acq)] = -1
        return AxisMap(matrix=None, index=index.astype(np.int64))
    k_a = axis_positions(n_acq, fov_acq_mm, c)
    k_m = axis_positions(n_model, fov_model_mm)
    x = (np.arange(n_model) - n_model // 2) * (fov_model_mm / n_model)
    # Only pixels inside the acquired field of view (beyond it the periodic
    # interpolant would repeat the image).
    x = x[np.abs(x) <= 0.5 * fov_acq_mm]
    # Model Nyquist range: [-n/2, n/2) samples of spacing 1/fov_model.
    k_lo, k_hi = k_m[0] - 0.5 / fov_model_mm, k_m[-1] + 0.5 / fov_model_mm
    keep = (k_a >= k_lo) & (k_a < k_hi)
    phase = 2.0 * np.pi * (k_a[None, None, :] - k_m[:, None, None]) * x[None, :, None]
    matrix = np.exp(1j * phase).sum(axis=1) / np.sqrt(n_model * n_acq)
    matrix[:, ~keep] = 0.0
    dist = np.abs(k_m[:, None] - k_a[None, :])
    nearest = np.argmin(dist, axis=1)
    near = dist[np.arange(n_model), nearest] <= 0.5 / fov_model_mm
    index = np.where(near, nearest, -1)
    return AxisMap(matrix=matrix.astype(np.complex64), index=index.astype(np.int64))


def model_mask(
    ky_map: AxisMap,
    mask: np.ndarray,
    fov_acq_mm: float,
    fov_model_mm: float,
    center: int | None = None,
) -> np.ndarray:
    """``(n_model,)`` bool: model lines that count as acquired (see module doc)."""
    mask = np.asarray(mask, dtype=bool)
    if ky_map.matrix is None:
        ok = ky_map.index >= 0
        out = np.zeros(ky_map.index.shape, dtype=bool)
        out[ok] = mask[ky_map.index[ok]]
        return out
    n_model, n_acq = ky_map.matrix.shape
    k_a = axis_positions(n_acq, fov_acq_mm, center)
    k_m = axis_positions(n_model, fov_model_mm)
    sampled = k_a[mask]
    if sampled.size == 0:
        return np.zeros(n_model, dtype=bool)
    dist = np.abs(k_m[:, None] - sampled[None, :]).min(axis=1)
    return np.asarray(dist <= 0.5 / fov_model_mm + 1e-12)


def apply_axis(xp_array: np.ndarray, amap: AxisMap, axis: int) -> np.ndarray:
    """Apply an ``AxisMap`` along ``axis`` of a NumPy or CuPy array (complex64 out)."""
    from kmtr_stream.kspace.xp import get_array_module

    xp = get_array_module(xp_array)
    a = xp.moveaxis(xp_array, axis, -1)
    if amap.matrix is None:
        idx = xp.asarray(np.maximum(amap.index, 0))
        out = a[..., idx] * xp.asarray(amap.index >= 0)
    else:
        out = a @ xp.asarray(amap.matrix).T
    return xp.moveaxis(out.astype(xp.complex64), -1, axis)


def to_model_grid(
    kspace: np.ndarray,
    mask: np.ndarray,
    kx_map: AxisMap,
    ky_map: AxisMap,
    fov_y_acq_mm: float,
    fov_y_model_mm: float,
    center_line: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Resample one ``(coils, ky, kx)`` buffer onto the model grid.

    Args:
        kspace: ``(coils, ky_acq, kx_acq)`` complex64 (unacquired lines zero).
        mask: ``(ky_acq,)`` bool acquired lines.
        kx_map: readout map from ``axis_map``.
        ky_map: phase-encode map from ``axis_map``.
        fov_y_acq_mm: acquired phase-encode field of view.
        fov_y_model_mm: model phase-encode field of view.
        center_line: acquired ky line of DC (``ky_acq // 2`` when None).

    Returns:
        ``(coils, ky_model, kx_model)`` complex64 k-space (lines outside the model mask
        zero) and the ``(ky_model,)`` bool model mask.
    """
    from kmtr_stream.kspace.xp import get_array_module

    xp = get_array_module(kspace)
    m_acq = np.asarray(mask, dtype=bool)
    zeroed = kspace * xp.asarray(m_acq)[None, :, None]
    out = apply_axis(apply_axis(zeroed, kx_map, 2), ky_map, 1)
    m_model = model_mask(ky_map, m_acq, fov_y_acq_mm, fov_y_model_mm, center_line)
    return out * xp.asarray(m_model)[None, :, None], m_model
