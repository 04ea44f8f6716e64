"""Readout-oversampling removal along kx (pure math), no image is formed.

A readout sampled with oversampling factor ``n_in / n_out`` covers a field of
view ``n_in / n_out`` times the reconstructed one along x. Removing it is a
1-D operation on each readout: centred inverse FFT along kx, keep the central
``n_out`` samples of the 1-D profile, centred FFT back. Both transforms are
orthonormal, as Gadgetron's (``hoNDFFT``) and the simulator's are, so white
noise keeps its per-sample variance (prewhitened noise stays white with unit
variance) and, for an object inside the reconstructed field of view, the
result equals decimating kx by the factor times ``sqrt(n_in / n_out)``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from kmtr_stream.kspace.xp import get_array_module


def crop_start(n_in: int, n_out: int) -> int:
    """First kept index of the centred crop of ``n_out`` from ``n_in`` (DC at ``n // 2``)."""
    if not 1 <= n_out <= n_in:
        raise ValueError(f"cannot crop {n_out} samples from {n_in}")
    return n_in // 2 - n_out // 2


def remove_readout_oversampling(data: Any, n_out: int) -> Any:
    """Crop the readout field of view of ``(..., kx)`` k-space to ``n_out`` samples.

    Args:
        data: ``(..., kx)`` complex k-space, DC at index ``kx // 2``.
        n_out: samples to keep (the recon-space matrix size x).

    Returns:
        ``(..., n_out)`` complex k-space of ``data``'s dtype, DC at ``n_out // 2``.
    """
    xp = get_array_module(data)
    n_in = data.shape[-1]
    if n_out == n_in:
        return data
    start = crop_start(n_in, n_out)
    shifted = xp.fft.ifftshift(data, axes=-1)
    profile = xp.fft.fftshift(xp.fft.ifft(shifted, axis=-1, norm="ortho"), axes=-1)
    cropped = profile[..., start : start + n_out]
    back = xp.fft.fft(xp.fft.ifftshift(cropped, axes=-1), axis=-1, norm="ortho")
    out = xp.fft.fftshift(back, axes=-1)
    return out.astype(data.dtype)


def center_sample_after(center_sample: int, n_in: int, n_out: int) -> int:
    """``center_sample`` of a readout after cropping ``n_in`` -> ``n_out`` samples.

    The echo centre moves by the same ratio as the sample count (Gadgetron
    halves it for factor-2 oversampling).
    """
    return round(center_sample * n_out / n_in)


#: Smallest share of one half of k-space that the short side of DC may keep (partial
#: Fourier along ky, partial echo along kx): 6/8 partial Fourier keeps 0.5 of the half;
#: below that too much of k-space is missing for the model.
MIN_PARTIAL_FOURIER_HALF = 0.5


def keeps_short_half(center: int, n_acquired: int, n_full: int) -> bool:
    """Whether ``n_acquired`` samples with DC at ``center`` keep at least
    ``MIN_PARTIAL_FOURIER_HALF`` of the short half of an ``n_full``-sample axis."""
    return n_full > 0 and min(center, n_acquired - center) / (n_full / 2) >= (
        MIN_PARTIAL_FOURIER_HALF)


def partial_echo_offset(n_samples: int, center_sample: int, n_full: int) -> int:
    """Where a partial-echo readout sits on the full readout axis (DC at ``n_full // 2``).

    An asymmetric echo acquires fewer than ``n_full`` samples, ``center_sample`` of
    them before the echo; zero-filling the rest puts sample ``center_sample`` at DC.

    Raises:
        ValueError: naming ``center_sample`` when the readout does not fit the axis
            that way, or keeps less than ``MIN_PARTIAL_FOURIER_HALF`` of the short half.
    """
    offset = n_full // 2 - center_sample
    if not 0 <= offset <= n_full - n_samples:
        raise ValueError(
            f"center_sample = {center_sample} of a {n_samples}-sample readout does not put "
            f"the echo inside the header's encoded matrix size x = {n_full}"
        )
    if not keeps_short_half(center_sample, n_samples, n_full):
        raise ValueError(
            f"center_sample = {center_sample} of a {n_samples}-sample readout (encoded "
            f"matrix size x = {n_full}): partial echo beyond 6/8 is not supported"
        )
    return offset


def kept_samples(
    n_samples: int, center_sample: int, discard_pre: int, discard_post: int
) -> tuple[int, int]:
    """``(samples, center_sample)`` of a readout once its ADC's ``discard_pre`` leading
    and ``discard_post`` trailing samples are dropped (``center_sample`` counts from the
    first stored sample, as ISMRMRD writes it; the result may be negative where it was
    never set, which only a partial echo, ``partial_echo_offset``, refuses).

    Raises:
        ValueError: naming ``discard_pre``/``discard_post`` when they leave no sample.
    """
    kept = n_samples - discard_pre - discard_post
    if kept <= 0:
        raise ValueError(
            f"discard_pre = {discard_pre} and discard_post = {discard_post} leave none of "
            f"the readout's {n_samples} samples"
        )
    return kept, center_sample - discard_pre


def readout_size_text(n_samples: int, discard_pre: int, discard_post: int) -> str:
    """"readout has N samples", or with discarded samples what is kept of how many."""
    if (discard_pre, discard_post) == (0, 0):
        return f"readout has {n_samples} samples"
    kept = n_samples - discard_pre - discard_post
    return (f"readout keeps {kept} of its {n_samples} samples (discard_pre = {discard_pre}, "
            f"discard_post = {discard_post})")


@functools.lru_cache(maxsize=16)
def _operator_host(
    n_in: int, n_out: int, offset: int, n_full: int, first: int, n_kept: int
) -> np.ndarray:
    eye = np.zeros((n_in, n_full), dtype=np.complex128)
    eye[first : first + n_kept, offset : offset + n_kept] = np.eye(n_kept)
    return np.ascontiguousarray(remove_readout_oversampling(eye, n_out).astype(np.complex64))


def readout_crop_operator(
    n_in: int, n_out: int, xp: Any = np, offset: int = 0, n_full: int = 0,
    discard: tuple[int, int] = (0, 0),
) -> Any:
    """The crop as one ``(n_in, n_out)`` complex64 matrix: ``data @ op`` equals the FFT path.

    The ``discard`` = ``(discard_pre, discard_post)`` samples at either end of the stored
    readout are dropped first (their rows are zero). A partial-echo readout (fewer kept
    samples than ``n_full``) is then zero-filled to ``n_full`` samples from ``offset`` on
    (``partial_echo_offset``), in the same matrix. The operation is linear, so its
    matrix is exact; one small matrix product per readout is cheaper than the
    shift/FFT/crop/FFT sequence (one kernel on a GPU).
    """
    pre, post = discard
    n_kept = n_in - pre - post
    return xp.asarray(_operator_host(n_in, n_out, offset, max(n_full, n_kept), pre, n_kept))
