"""One subject on the scanner: coil array, noise covariance and fully sampled k-space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.anatomy import TISSUE_INTENSITY
from simulator.cohort import Subject
from simulator.coils import coil_sensitivities, draw_coil_array
from simulator.config import SimConfig
from simulator.kspace import fft2c
from simulator.noise import random_covariance
from simulator.phantom import pixel_coords_mm, render_image, slice_geometry


def scanner_rng(subject_id: int, seed: int, stream: int) -> np.random.Generator:
    """Generator of scanner randomness (1: coils and covariance, 2: noise, 3: mask)."""
    return np.random.default_rng([int(seed), int(subject_id), int(stream)])


@dataclass(frozen=True)
class ScannerSetup:
    """Coils and receiver noise for one subject.

    Attributes:
        sensitivities: ``(coils, slices, ny, nx_grid)`` complex64 on the grid asked for.
        noise_cov: ``(coils, coils)`` complex128 covariance of per-sample noise.
    """

    sensitivities: np.ndarray
    noise_cov: np.ndarray


def scanner_setup(subject: Subject, cfg: SimConfig, oversampled: bool) -> ScannerSetup:
    """Coil sensitivities on the (oversampled or reconstructed) grid and the noise covariance.

    The noise std per sample is ``blood intensity / snr`` (sensitivities have unit
    root-sum-of-squares at the heart), so ``snr`` is the blood SNR of a
    coil-combined image.
    """
    p = subject.params
    rng = scanner_rng(p.subject_id, p.seed, 1)
    coils = draw_coil_array(cfg.n_coils, p, cfg, rng)
    cov = random_covariance(cfg.n_coils, rng, cfg.noise_correlation)
    nx = cfg.nx_os if oversampled else cfg.nx
    g = slice_geometry(p, cfg)
    z = np.asarray(cfg.slice_positions_mm())
    ref = (float(np.mean(g.cx)), float(np.mean(g.cy)), float(np.mean(z)))
    sens = coil_sensitivities(
        coils, pixel_coords_mm(nx, cfg.dx_mm), pixel_coords_mm(cfg.ny, cfg.dy_mm), z, ref
    )
    sigma = TISSUE_INTENSITY["blood"] / cfg.snr
    return ScannerSetup(sensitivities=sens, noise_cov=cov * sigma * sigma)


def coil_kspace(
    subject: Subject, cfg: SimConfig, setup: ScannerSetup, phases: Sequence[int], oversampled: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free multi-coil k-space of the phantom.

    Returns:
        ``(phases, slices, coils, ky, kx)`` complex64 k-space (``kx = nx_os`` when
        oversampled) and the ``(phases, slices, ny, nx)`` complex64 phantom images
        it came from.
    """
    img = render_image(subject.params, cfg, phases, oversampled=oversampled)
    sens = np.moveaxis(setup.sensitivities, 0, 1)  # (S, C, Y, X)
    k = fft2c(img[:, :, None] * sens[None]).astype(np.complex64)
    return k, img
