"""Centred orthonormal Fourier transforms and readout-oversampling removal (pure math).

Convention: pixel ``n // 2`` is the image centre and k-space sample ``n // 2``
is DC (``fftshift(fft(ifftshift(x)))`` with ``norm="ortho"``), so white noise
keeps its per-sample variance between image and k-space.
"""

from __future__ import annotations

import numpy as np


def fft2c(image: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2D FFT over the last two axes ``(..., y, x) -> (..., ky, kx)``."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=axes), norm="ortho"), axes=axes)


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    """Centred orthonormal inverse 2D FFT ``(..., ky, kx) -> (..., y, x)``."""
    axes = (-2, -1)
    return np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kspace, axes=axes), norm="ortho"), axes=axes
    )


def fft1c(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Centred orthonormal 1D FFT along ``axis``."""
    return np.fft.fftshift(
        np.fft.fft(np.fft.ifftshift(x, axes=axis), axis=axis, norm="ortho"), axes=axis
    )


def ifft1c(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Centred orthonormal inverse 1D FFT along ``axis``."""
    return np.fft.fftshift(
        np.fft.ifft(np.fft.ifftshift(x, axes=axis), axis=axis, norm="ortho"), axes=axis
    )


def remove_readout_oversampling(kspace: np.ndarray, factor: int) -> np.ndarray:
    """Crop the readout field of view by ``factor``.

    Args:
        kspace: ``(..., kx_os)`` readouts, DC at sample ``kx_os // 2``.
        factor: oversampling factor (``kx_os = factor * nx``).

    Returns:
        ``(..., nx)`` readouts over the central field of view (same noise variance per sample).
    """
    n_os = kspace.shape[-1]
    if n_os % factor:
        raise ValueError(f"readout length {n_os} is not a multiple of the oversampling {factor}")
    n = n_os // factor
    start = n_os // 2 - n // 2
    x = ifft1c(kspace, axis=-1)[..., start : start + n]
    # Orthonormal transforms: cropping keeps the per-sample noise variance.
    return fft1c(x, axis=-1).astype(kspace.dtype, copy=False)


def rss(images: np.ndarray, axis: int = 0) -> np.ndarray:
    """Root-sum-of-squares coil combination along ``axis``."""
    return np.sqrt(np.sum(np.abs(images) ** 2, axis=axis))


def calibration_slice(n_ky: int, n_calib: int) -> slice:
    """ky index range of the centred calibration region."""
    start = n_ky // 2 - n_calib // 2
    return slice(start, start + n_calib)


def virtual_coil_buffer(
    kspace: np.ndarray, n_virtual: int, n_calib: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Coil-compress and normalise one (slice, phase) buffer, as training data is.

    Steps (the streaming chain applies the same ones to each completed buffer):
    the compression matrix comes from the calibration region (central
    ``n_calib`` ky lines, every kx) of the prewhitened, oversampling-removed
    k-space; the virtual coils are then divided by the RMS of virtual coil 0
    over that same calibration region, so magnitudes are O(1).

    Args:
        kspace: ``(coils, ky, kx)`` prewhitened k-space (unsampled lines may be zero).
        n_virtual: virtual coils to keep.
        n_calib: calibration lines (>= 1).

    Returns:
        ``(n_virtual, ky, kx)`` complex64 normalised k-space, the ``(n_virtual, coils)``
        compression matrix and the scale that was divided out.
    """
    from kmtr_stream.kspace.coil_compression import apply_compression, compression_matrix

    cal = kspace[:, calibration_slice(kspace.shape[1], max(n_calib, 1)), :]
    matrix = compression_matrix(cal, n_virtual)
    virtual = apply_compression(matrix, kspace).astype(np.complex64)
    vcal = virtual[0, calibration_slice(kspace.shape[1], max(n_calib, 1)), :]
    scale = float(np.sqrt(np.mean(np.abs(vcal) ** 2)))
    if scale <= 0.0:
        scale = 1.0
    return virtual / np.float32(scale), matrix, scale
