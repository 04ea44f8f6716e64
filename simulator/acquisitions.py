"""ISMRMRD acquisitions of one simulated scan, in streaming order.

Streaming order (what a reader sees):

1. ``n_noise_readouts`` noise-only readouts flagged ``ACQ_IS_NOISE_MEASUREMENT``
   (receivers on, no excitation), all counters 0;
2. for each slice (base to apex), for each cardiac phase (0 = end-diastole):
   the sampled ky lines of that (slice, phase) in the chosen ordering. The first
   line of each buffer carries ``FIRST_IN_SLICE | FIRST_IN_PHASE |
   FIRST_IN_ENCODE_STEP1``, the last ``LAST_IN_SLICE | LAST_IN_PHASE |
   LAST_IN_ENCODE_STEP1``; lines of the calibration region are flagged
   ``IS_PARALLEL_CALIBRATION_AND_IMAGING`` when they belong to the imaging
   pattern too (equispaced: ``ky % accel == offset``; variable density: always)
   and ``IS_PARALLEL_CALIBRATION`` otherwise;
3. the very last line also carries ``ACQ_LAST_IN_MEASUREMENT``.

With ``SimConfig.partial_echo`` below 1 the imaging readouts are asymmetric echoes:
their first ``echo_dropped`` samples are not acquired and ``center_sample`` (the
echo) is that much below the centre; noise readouts stay full length. With
``SimConfig.adc_discard`` each imaging readout carries that many extra samples at
either end (a receive-filter transient), flagged ``discard_pre``/``discard_post``.

Time stamps are milliseconds: ``acquisition_time_stamp`` counts one TR per
readout from the start of the scan, ``physiology_time_stamp[0]`` is the time
after the R wave of the line's cardiac phase (retrospective cine binning).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import ismrmrd
import numpy as np

from simulator.config import SimConfig

F = ismrmrd  # flag constants live on the package


def flag_bit(flag: int) -> int:
    """Bit mask of ISMRMRD flag number ``flag`` (flags are 1-based)."""
    return 1 << (flag - 1)


@dataclass(frozen=True)
class ScanPlan:
    """What is acquired and in which order.

    Attributes:
        mask: ``(ky,)`` bool sampling mask (same for every slice and phase).
        order: ``(lines,)`` ky indices in acquisition order.
        calib: ``(ky,)`` bool calibration region.
        imaging: ``(ky,)`` bool lines that belong to the imaging pattern.
    """

    mask: np.ndarray
    order: np.ndarray
    calib: np.ndarray
    imaging: np.ndarray


def measurement_uid(subject_id: int, seed: int) -> int:
    """Stable 32-bit measurement id of one subject's scan."""
    return (int(seed) * 1_000_003 + int(subject_id)) & 0xFFFFFFFF


def _header(cfg: SimConfig, uid: int, counter: int, n_channels: int) -> ismrmrd.AcquisitionHeader:
    h = ismrmrd.AcquisitionHeader()
    h.version = 1
    h.measurement_uid = uid
    h.scan_counter = counter
    h.acquisition_time_stamp = round(counter * cfg.tr_ms)
    h.number_of_samples = cfg.nx_os - cfg.echo_dropped
    h.available_channels = n_channels
    h.active_channels = n_channels
    h.center_sample = cfg.nx_os // 2 - cfg.echo_dropped
    h.discard_pre = 0
    h.discard_post = 0
    h.sample_time_us = cfg.dwell_time_us
    h.read_dir[:] = (1.0, 0.0, 0.0)
    h.phase_dir[:] = (0.0, 1.0, 0.0)
    h.slice_dir[:] = (0.0, 0.0, 1.0)
    return h


def _with_transient(line: np.ndarray, n: int) -> np.ndarray:
    """``line`` with ``n`` samples of a decaying filter transient at each end, ten times
    the line's peak: what a reader that ignores ``discard_pre/post`` would take as data."""
    peak = 10.0 * float(np.abs(line).max() or 1.0)
    ramp = (peak * np.exp(-np.arange(n) / n)).astype(np.complex64)
    edge = np.broadcast_to(ramp, (line.shape[0], n))
    return np.concatenate([edge[:, ::-1], line.astype(np.complex64), edge], axis=-1)


def noise_acquisitions(
    noise: np.ndarray, cfg: SimConfig, uid: int
) -> Iterator[ismrmrd.Acquisition]:
    """Noise-calibration readouts.

    Args:
        noise: ``(readouts, coils, kx_os)`` complex64 noise samples.
        cfg: configuration (dwell time, TR).
        uid: measurement uid.
    """
    for i in range(noise.shape[0]):
        h = _header(cfg, uid, i, noise.shape[1])
        h.number_of_samples, h.center_sample = noise.shape[2], noise.shape[2] // 2
        h.flags = flag_bit(F.ACQ_IS_NOISE_MEASUREMENT)
        yield ismrmrd.Acquisition(head=h, data=np.ascontiguousarray(noise[i], dtype=np.complex64))


def imaging_acquisitions(
    kspace: np.ndarray, plan: ScanPlan, cfg: SimConfig, uid: int, first_counter: int
) -> Iterator[ismrmrd.Acquisition]:
    """Sampled lines of every (slice, phase), in streaming order.

    Args:
        kspace: ``(phases, slices, coils, ky, kx_os)`` complex64 k-space (noise included).
        plan: mask and line order.
        cfg: configuration.
        uid: measurement uid.
        first_counter: scan counter of the first line (after the noise readouts).
    """
    n_p, n_s, n_c = kspace.shape[:3]
    z = cfg.slice_positions_mm()
    counter = first_counter
    n_lines = plan.order.size
    first = (
        flag_bit(F.ACQ_FIRST_IN_SLICE)
        | flag_bit(F.ACQ_FIRST_IN_PHASE)
        | flag_bit(F.ACQ_FIRST_IN_ENCODE_STEP1)
    )
    last = (
        flag_bit(F.ACQ_LAST_IN_SLICE)
        | flag_bit(F.ACQ_LAST_IN_PHASE)
        | flag_bit(F.ACQ_LAST_IN_ENCODE_STEP1)
    )
    for s in range(n_s):
        for p in range(n_p):
            for j, ky in enumerate(plan.order):
                h = _header(cfg, uid, counter, n_c)
                flags = 0
                if j == 0:
                    flags |= first
                if j == n_lines - 1:
                    flags |= last
                    if s == n_s - 1 and p == n_p - 1:
                        flags |= flag_bit(F.ACQ_LAST_IN_MEASUREMENT)
                if plan.calib[ky]:
                    flags |= flag_bit(
                        F.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING
                        if plan.imaging[ky]
                        else F.ACQ_IS_PARALLEL_CALIBRATION
                    )
                h.flags = flags
                h.idx.kspace_encode_step_1 = int(ky)
                h.idx.slice = s
                h.idx.phase = p
                h.physiology_time_stamp[0] = round(p * cfg.rr_interval_ms / cfg.n_phases)
                h.position[:] = (0.0, 0.0, float(z[s]))
                line = kspace[p, s, :, ky, cfg.echo_dropped :]
                if cfg.adc_discard:
                    line = _with_transient(line, cfg.adc_discard)
                    h.number_of_samples = line.shape[-1]
                    h.center_sample += cfg.adc_discard
                    h.discard_pre = h.discard_post = cfg.adc_discard
                yield ismrmrd.Acquisition(head=h, data=np.ascontiguousarray(line))
                counter += 1
