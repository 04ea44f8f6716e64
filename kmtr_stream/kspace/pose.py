"""Exact pose changes of a centred grid, in k-space and image space alike (pure NumPy).

A circular shift of the image is a linear phase ramp on its centred spectrum, and
a quarter turn (or a mirror) of the image is the same quarter turn (or mirror) of the
spectrum about sample ``n // 2``; so training augmentation and the robustness checks
move a subject without forming an image.
"""

from __future__ import annotations

import numpy as np


def _mirror_index(n: int) -> np.ndarray:
    """Indices ``(2 c - j) % n``, ``c = n // 2``: sample ``j`` mirrored about the centre."""
    return (2 * (n // 2) - np.arange(n)) % n


def rot90_centred(a: np.ndarray, turns: int) -> np.ndarray:
    """Rotate the last two axes by ``turns`` quarter turns about sample ``n // 2``.

    ``out[i, j] = a[j, (2 c - i) % n]`` per turn, ``c = n // 2``: the exact rotation of
    a centred grid (image or k-space alike, since a rotation of the image rotates its
    spectrum), odd and even sizes.
    """
    n = a.shape[-1]
    if a.shape[-2] != n:
        raise ValueError(f"rotation needs a square grid, got {a.shape[-2:]}")
    flip = _mirror_index(n)
    out = a
    for _ in range(turns % 4):
        out = np.swapaxes(out, -1, -2)[..., flip, :]
    return out


def mirror_centred(a: np.ndarray) -> np.ndarray:
    """Mirror the last axis about sample ``n // 2``: ``out[..., j] = a[..., (2 c - j) % n]``.

    The exact left-right mirror of a centred grid, image or k-space alike (the spectrum
    of ``f(-x)`` is the spectrum of ``f`` at ``-k``, complex images included), odd and
    even sizes: a short-axis view seen from the other side.
    """
    return a[..., _mirror_index(a.shape[-1])]


def shift_ramp(n_ky: int, n_kx: int, dy: int, dx: int) -> np.ndarray:
    """``(n_ky, n_kx)`` complex64 phase ramp that shifts the image by ``(dy, dx)`` pixels."""
    ky = np.arange(n_ky) - n_ky // 2
    kx = np.arange(n_kx) - n_kx // 2
    phase = ky[:, None] * (dy / n_ky) + kx[None, :] * (dx / n_kx)
    return np.exp(-2j * np.pi * phase).astype(np.complex64)


def shift_kspace(kspace: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Centred ``(..., ky, kx)`` k-space of the image circularly shifted by ``(dy, dx)``."""
    return kspace * shift_ramp(kspace.shape[-2], kspace.shape[-1], dy, dx)


def shift_image(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The same circular shift of an image or label map ``(..., ny, nx)``."""
    return np.roll(a, (dy, dx), axis=(-2, -1))
