"""Bounded store of open slice buffers (array bookkeeping, no messages).

One buffer per ``(slice, phase, repetition)`` holds ``(coils, ky, kx)``
complex64 k-space on the backend's device, allocated once when its first
line arrives, and a ``(ky,)`` host bool mask of the lines acquired. At most
``max_open`` buffers are open; opening one more evicts the oldest, which the
caller must report.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import ismrmrd
import numpy as np

from kmtr_stream.kspace.triggers import CoverageState, TriggerPolicy

#: Readouts that carry no k-space lines of the image (skipped by the buffer).
NON_IMAGING_FLAGS = (
    ismrmrd.ACQ_IS_NOISE_MEASUREMENT,
    ismrmrd.ACQ_IS_NAVIGATION_DATA,
    ismrmrd.ACQ_IS_PHASECORR_DATA,
    ismrmrd.ACQ_IS_DUMMYSCAN_DATA,
    ismrmrd.ACQ_IS_RTFEEDBACK_DATA,
    ismrmrd.ACQ_IS_HPFEEDBACK_DATA,
    ismrmrd.ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION_REFERENCE,
)
#: Readouts of the parallel-imaging calibration region.
CALIBRATION_FLAGS = (
    ismrmrd.ACQ_IS_PARALLEL_CALIBRATION,
    ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING,
)


def flag_mask(flags: tuple[int, ...]) -> int:
    """The bits of ISMRMRD acquisition ``flags`` (1-based flag numbers) as one mask."""
    mask = 0
    for flag in flags:
        mask |= 1 << (flag - 1)
    return mask


NON_IMAGING_MASK = flag_mask(NON_IMAGING_FLAGS)
CALIBRATION_MASK = flag_mask(CALIBRATION_FLAGS)


def is_non_imaging(acq: ismrmrd.Acquisition) -> bool:
    """True for a readout that carries no image line (one mask test, not one per flag)."""
    return bool(acq.flags & NON_IMAGING_MASK)


def is_calibration(acq: ismrmrd.Acquisition) -> bool:
    """True for a readout of the parallel-imaging calibration region."""
    return bool(acq.flags & CALIBRATION_MASK)


class BufferKey(NamedTuple):
    """Identity of one slice buffer."""

    slice: int
    phase: int
    repetition: int


@dataclass
class KSpaceBuffer:
    """One open slice buffer.

    Attributes:
        key: its (slice, phase, repetition).
        kspace: ``(coils, ky, kx)`` complex64 on the backend's device.
        mask: ``(ky,)`` host bool, True where a line arrived.
        state: trigger bookkeeping.
        last_in_measurement: a line flagged ACQ_LAST_IN_MEASUREMENT arrived.
        t_last_line_ns: ``perf_counter_ns`` of the latest line.
    """

    key: BufferKey
    kspace: Any
    mask: np.ndarray
    state: CoverageState = field(default_factory=CoverageState)
    last_in_measurement: bool = False
    t_last_line_ns: int = 0

    def insert(self, policy: TriggerPolicy, ky: int, line: Any, is_calibration: bool) -> None:
        """Write one ``(coils, kx)`` line at ``ky`` (a repeated ky overwrites)."""
        self.kspace[:, ky, :] = line
        is_new = not bool(self.mask[ky])
        self.mask[ky] = True
        self.state.add_line(policy, ky, is_new, is_calibration)


class BufferStore:
    """Open buffers in opening order, capped at ``max_open``; closed keys are remembered.

    Args:
        xp: array module (numpy or cupy) that buffers live in.
        n_ky: ky lines of each buffer.
        max_open: most buffers open at once.
    """

    def __init__(self, xp: Any, n_ky: int, max_open: int) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be >= 1, got {max_open}")
        self.xp = xp
        self.n_ky = n_ky
        self.max_open = max_open
        self.open: OrderedDict[BufferKey, KSpaceBuffer] = OrderedDict()
        self.closed: set[BufferKey] = set()

    def bytes_open(self) -> int:
        """Bytes of k-space held by the open buffers."""
        return sum(int(b.kspace.nbytes) for b in self.open.values())

    def get(self, key: BufferKey) -> KSpaceBuffer | None:
        """The open buffer of ``key``, or None."""
        return self.open.get(key)

    def open_buffer(
        self, key: BufferKey, coils: int, kx: int
    ) -> tuple[KSpaceBuffer, KSpaceBuffer | None]:
        """Allocate a buffer for ``key``; returns it and the evicted oldest one, if any."""
        evicted = None
        if len(self.open) >= self.max_open:
            _, evicted = self.open.popitem(last=False)
            self.closed.add(evicted.key)
        buf = KSpaceBuffer(
            key=key,
            kspace=self.xp.zeros((coils, self.n_ky, kx), dtype=self.xp.complex64),
            mask=np.zeros(self.n_ky, dtype=bool),
        )
        self.open[key] = buf
        return buf, evicted

    def close(self, key: BufferKey) -> KSpaceBuffer:
        """Remove an open buffer for good; later lines of ``key`` are refused."""
        self.closed.add(key)
        return self.open.pop(key)
