"""One subject on the scanner: coil array, noise covariance and fully sampled k-space."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import ismrmrd
import numpy as np

from simulator.acquisitions import (
    ScanPlan,
    imaging_acquisitions,
    measurement_uid,
    noise_acquisitions,
)
from simulator.anatomy import TISSUE_INTENSITY
from simulator.cohort import Subject, make_subject
from simulator.coils import coil_sensitivities, draw_coil_array
from simulator.config import SimConfig
from simulator.kspace import fft2c
from simulator.noise import correlated_noise, random_covariance
from simulator.phantom import pixel_coords_mm, render_image, slice_geometry
from simulator.sampling import calibration_mask, line_order, make_mask
from simulator.xml_header import header_xml


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
    sigma = TISSUE_INTENSITY["blood"] / (p.snr or cfg.snr)
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


@dataclass(frozen=True)
class ScanData:
    """A complete simulated scan of one subject.

    Attributes:
        subject: the subject and its ground truth.
        setup: coils (oversampled grid) and noise covariance.
        plan: sampling mask and line order.
        kspace: ``(phases, slices, coils, ky, kx_os)`` complex64, every line simulated;
            receiver noise is added to the lines of ``plan.mask`` (the ones sent) only.
        noise: ``(readouts, coils, kx_os)`` complex64 noise-calibration readouts.
        images: ``(phases, slices, ny, nx)`` complex64 noise-free phantom over the
            reconstructed field of view.
    """

    subject: Subject
    setup: ScannerSetup
    plan: ScanPlan
    kspace: np.ndarray
    noise: np.ndarray
    images: np.ndarray

    def xml(self, cfg: SimConfig) -> str:
        """The ISMRMRD XML header text."""
        p = self.subject.params
        return header_xml(cfg, p.subject_id, p.bsa_m2, p.weight_kg, p.height_cm)

    def acquisitions(self, cfg: SimConfig) -> Iterator[ismrmrd.Acquisition]:
        """All acquisitions in streaming order (see :mod:`simulator.acquisitions`)."""
        p = self.subject.params
        uid = measurement_uid(p.subject_id, p.seed)
        yield from noise_acquisitions(self.noise, cfg, uid)
        yield from imaging_acquisitions(self.kspace, self.plan, cfg, uid, self.noise.shape[0])


def scan_plan(cfg: SimConfig, rng: np.random.Generator) -> ScanPlan:
    """Mask, ordering and calibration/imaging line sets of one scan."""
    n_ky = cfg.ny
    calib = calibration_mask(n_ky, cfg.n_calib)
    if cfg.mask_kind == "equispaced":
        offset = int(rng.integers(cfg.accel))
        imaging = np.zeros(n_ky, dtype=bool)
        imaging[offset :: cfg.accel] = True
        mask = imaging | calib
    else:
        mask = make_mask(cfg.mask_kind, n_ky, cfg.accel, cfg.n_calib, rng)
        imaging = mask.copy()
    return ScanPlan(mask=mask, order=line_order(mask, cfg.ordering), calib=calib, imaging=imaging)


def simulate_scan(
    subject_id: int,
    seed: int,
    cfg: SimConfig,
    diagnosis: int | None = None,
    subject: Subject | None = None,
) -> ScanData:
    """Simulate the whole acquisition of one subject (all phases, oversampled readouts).

    ``subject`` (drawn under another configuration) scans that same anatomy with
    this configuration's protocol: matrix, field of view, coils, oversampling.
    """
    if subject is None:
        subject = make_subject(subject_id, seed, cfg, diagnosis)
    setup = scanner_setup(subject, cfg, oversampled=True)
    k, img = coil_kspace(subject, cfg, setup, range(cfg.n_phases), oversampled=True)
    noise_rng = scanner_rng(subject_id, seed, 2)
    noise = correlated_noise(setup.noise_cov, (cfg.n_noise_readouts, cfg.nx_os), noise_rng)
    plan = scan_plan(cfg, scanner_rng(subject_id, seed, 3))
    # Only lines that are sent get receiver noise (saves most of the noise draws).
    rows = np.flatnonzero(plan.mask)
    shape = (k.shape[0], k.shape[1], rows.size, k.shape[4])
    k[:, :, :, rows, :] += np.moveaxis(correlated_noise(setup.noise_cov, shape, noise_rng), 0, 2)
    start = cfg.nx_os // 2 - cfg.nx // 2
    return ScanData(
        subject=subject,
        setup=setup,
        plan=scan_plan(cfg, scanner_rng(subject_id, seed, 3)),
        kspace=k,
        noise=np.ascontiguousarray(np.moveaxis(noise, 0, 1)),
        images=np.ascontiguousarray(img[..., start : start + cfg.nx]),
    )
