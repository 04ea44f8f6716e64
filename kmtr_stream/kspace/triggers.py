"""When a slice buffer emits (pure logic, no arrays).

Modes:
    ``last_in_slice``: one final emission on the line flagged ACQ_LAST_IN_SLICE.
    ``coverage``: one final emission once "enough lines" arrived: the whole
        calibration region plus ``coverage_fraction`` of the ky lines of the
        encoded matrix. A line flagged ACQ_LAST_IN_SLICE that comes first
        closes the buffer anyway (trigger "last_in_slice"), so a slice never waits
        for end of stream.
    ``progressive``: an early, non-final emission at the coverage step, one
        more at each fraction of ``progressive_fractions`` above it, and the
        final one on ACQ_LAST_IN_SLICE (or at end of stream).
    ``flush``: emit only at end of stream.

Every mode emits whatever is still open at end of stream (trigger "flush").
Several steps crossed by one line give one emission; a buffer is final once.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

MODES = ("last_in_slice", "coverage", "progressive", "flush")


@dataclass(frozen=True)
class TriggerPolicy:
    """Trigger configuration of one slice buffer gadget.

    Attributes:
        mode: one of ``MODES``.
        n_ky: ky lines of the encoded matrix (denominator of the fractions).
        center_line: ky index of the k-space centre.
        coverage_fraction: fraction of ``n_ky`` needed for the coverage step.
        progressive_fractions: later fractions of ``n_ky`` (progressive mode).
        calibration_lines: width of the central calibration region in lines;
            0 infers it from lines flagged as parallel-calibration.
        expect_calibration: the header declares a calibration region, so no
            coverage step may fire before calibration lines arrived.
    """

    mode: str
    n_ky: int
    center_line: int
    coverage_fraction: float = 0.3
    progressive_fractions: tuple[float, ...] = ()
    calibration_lines: int = 0
    expect_calibration: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown trigger mode {self.mode!r} (expected one of {MODES})")

    @functools.cached_property
    def step_thresholds(self) -> tuple[int, ...]:
        """Line counts at which coverage/progressive steps fire, ascending and distinct."""
        if self.mode == "coverage":
            fracs: tuple[float, ...] = (self.coverage_fraction,)
        elif self.mode == "progressive":
            later = [f for f in self.progressive_fractions if f > self.coverage_fraction]
            fracs = (self.coverage_fraction, *later)
        else:
            return ()
        counts = sorted({max(1, math.ceil(f * self.n_ky - 1e-9)) for f in fracs})
        return tuple(counts)


@dataclass
class CoverageState:
    """Per-buffer bookkeeping the trigger decisions need (updated line by line).

    Attributes:
        n_lines: distinct ky lines acquired.
        calib_lo: lowest ky of a calibration-flagged line (-1: none yet).
        calib_hi: highest ky of a calibration-flagged line.
        calib_count: distinct calibration-flagged ky lines.
        region_count: distinct lines inside the configured calibration region.
        min_other: lowest ky of a non-calibration line (n_ky: none yet).
        max_other: highest ky of a non-calibration line (-1: none yet).
        center_seen: the centre line arrived.
        next_step: index of the next threshold in ``TriggerPolicy.step_thresholds``.
        final_emitted: the final emission went out.
    """

    n_lines: int = 0
    calib_lo: int = -1
    calib_hi: int = -1
    calib_count: int = 0
    region_count: int = 0
    min_other: int = 1 << 30
    max_other: int = -1
    center_seen: bool = False
    next_step: int = 0
    final_emitted: bool = False
    calib_lines: set[int] = field(default_factory=set)

    def add_line(self, policy: TriggerPolicy, ky: int, is_new: bool, is_calibration: bool) -> None:
        """Record one arrived line (``is_new``: its ky was not acquired before)."""
        if is_calibration:
            if ky not in self.calib_lines:
                self.calib_lines.add(ky)
                self.calib_count += 1
                self.calib_lo = ky if self.calib_lo < 0 else min(self.calib_lo, ky)
                self.calib_hi = max(self.calib_hi, ky)
        else:
            self.min_other = min(self.min_other, ky)
            self.max_other = max(self.max_other, ky)
        if not is_new:
            return
        self.n_lines += 1
        if ky == policy.center_line:
            self.center_seen = True
        w = policy.calibration_lines
        if w > 0:
            lo = policy.center_line - w // 2
            if lo <= ky < lo + w:
                self.region_count += 1

    def calibration_complete(self, policy: TriggerPolicy) -> bool:
        """True once the whole calibration region (or at least the centre line) arrived."""
        if policy.calibration_lines > 0:
            return self.region_count >= policy.calibration_lines
        if self.calib_count == 0:
            return self.center_seen and not policy.expect_calibration
        contiguous = self.calib_count == self.calib_hi - self.calib_lo + 1
        has_center = self.calib_lo <= policy.center_line <= self.calib_hi
        # The region is known complete once imaging lines arrived beyond both of its edges.
        below_done = self.calib_lo == 0 or self.min_other < self.calib_lo
        above_done = self.calib_hi == policy.n_ky - 1 or self.max_other > self.calib_hi
        return contiguous and has_center and below_done and above_done


def calibration_region(policy: TriggerPolicy, state: CoverageState) -> slice:
    """ky range of a buffer's calibration region (for compression and normalisation).

    The configured width around the centre when given; else the block of
    calibration-flagged lines seen; else the centre line alone.
    """
    if policy.calibration_lines > 0:
        start = policy.center_line - policy.calibration_lines // 2
        return slice(start, start + policy.calibration_lines)
    if state.calib_count > 0:
        return slice(state.calib_lo, state.calib_hi + 1)
    return slice(policy.center_line, policy.center_line + 1)


@dataclass(frozen=True)
class Emission:
    """One decided emission: why, and whether it closes the buffer."""

    trigger: str
    final: bool


def decide(policy: TriggerPolicy, state: CoverageState, last_in_slice: bool) -> Emission | None:
    """Whether the line just recorded in ``state`` makes the buffer emit.

    Updates ``state.next_step`` / ``state.final_emitted`` for the emission it returns.
    """
    if state.final_emitted:
        return None
    if last_in_slice and policy.mode != "flush":
        state.final_emitted = True
        state.next_step = len(policy.step_thresholds)
        trigger = "progressive" if policy.mode == "progressive" else "last_in_slice"
        return Emission(trigger, True)
    thresholds = policy.step_thresholds
    if state.next_step >= len(thresholds) or state.n_lines < thresholds[state.next_step]:
        return None
    if not state.calibration_complete(policy):
        return None
    while state.next_step < len(thresholds) and state.n_lines >= thresholds[state.next_step]:
        state.next_step += 1
    if policy.mode == "coverage":
        state.final_emitted = True
        return Emission("coverage", True)
    return Emission("progressive", False)


def decide_flush(state: CoverageState) -> Emission | None:
    """End of stream: the final emission of a buffer still open, if any."""
    if state.final_emitted:
        return None
    state.final_emitted = True
    return Emission("flush", True)
