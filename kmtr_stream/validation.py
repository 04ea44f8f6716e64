"""Data validation: readouts checked against the stream's header (pure checks, no messages).

Causes, each reported to the client once per stream as one ERROR (code
``invalid_data``) and counted after that:

* ``non_finite_samples``: a readout holds NaN or infinite samples.
* ``counter_out_of_range``: a slice, phase, repetition or ky/kz counter lies
  outside the header's encoding limits.
* ``duplicate_line``: the same line (slice, phase, repetition, ky, kz, average,
  contrast, set, segment) arrived twice.
* ``header_mismatch``: the readout contradicts the header: its sample count is
  neither the encoded nor the recon matrix size x nor a partial echo that fits the
  encoded one (``center_sample`` at most 6/8 off centre), counted after the ADC's
  ``discard_pre``/``discard_post`` samples are dropped; or its coil count is not
  the header's ``receiverChannels`` (or, without one, the first readout's).
* ``noise_calibration_failed``: the noise scan gave no usable prewhitener (NaN or
  infinite samples, not positive definite, wrong coil count), so the stream is
  analysed without prewhitening: every result from then on carries the flag.
* ``incomplete``: the stream ended before every slice and phase of the header's
  encoding limits had a result (the subject result's ``missing`` pairs).

The policy (``[chain.inputs] validation``) decides what a fault does to its
slice: ``strict`` refuses it (an explicit per-slice ERROR, and the subject
result lists it under ``refused``), ``lenient`` analyses it without the bad
readouts and flags its result. A failed noise calibration and an incomplete
measurement only ever flag: the data themselves are sound.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from kmtr_stream.kspace.geometry import limit_count
from kmtr_stream.kspace.oversampling import kept_samples, partial_echo_offset, readout_size_text

NON_FINITE = "non_finite_samples"
COUNTER = "counter_out_of_range"
DUPLICATE = "duplicate_line"
HEADER = "header_mismatch"
NOISE = "noise_calibration_failed"
INCOMPLETE = "incomplete"
#: Every cause, in the order the checks run.
CAUSES = (HEADER, COUNTER, NON_FINITE, DUPLICATE, NOISE, INCOMPLETE)
#: Causes that flag results but never refuse a slice.
FLAG_ONLY = frozenset({NOISE, INCOMPLETE})
STRICT = "strict"
LENIENT = "lenient"
#: Line identities remembered for duplicate detection, per stream (oldest forgotten first).
LEDGER_KEYS = 4096


@dataclass(frozen=True)
class ReadoutLimits:
    """What an imaging readout must agree with, read from the stream's header.

    Attributes:
        n_ky: ky lines (``EncodingGeometry.n_ky``).
        n_kz: kz partitions (``kspace_encoding_step_2`` limit).
        n_slices: slices.
        n_phases: cardiac phases.
        n_repetitions: repetitions.
        samples: readout sample counts that fit (encoded and recon matrix size x).
        encoded_x: encoded matrix size x (a shorter partial-echo readout must fit it).
        coils: the header's ``receiverChannels``, or None when it has none.
    """

    n_ky: int
    n_kz: int
    n_slices: int
    n_phases: int
    n_repetitions: int
    samples: tuple[int, ...]
    coils: int | None
    encoded_x: int = 0

    @classmethod
    def from_header(cls, header: Any, geometry: Any) -> ReadoutLimits:
        """Limits of a parsed ``ismrmrdHeader`` and its ``EncodingGeometry``."""
        lim = header.encoding[0].encodingLimits
        asi = getattr(header, "acquisitionSystemInformation", None)
        coils = getattr(asi, "receiverChannels", None) if asi is not None else None
        return cls(
            n_ky=int(geometry.n_ky),
            n_kz=limit_count(lim, "kspace_encoding_step_2"),
            n_slices=int(geometry.n_slices),
            n_phases=int(geometry.n_phases),
            n_repetitions=int(geometry.n_repetitions),
            samples=tuple(sorted({int(geometry.encoded_x), int(geometry.recon_x)})),
            coils=int(coils) if coils else None,
            encoded_x=int(geometry.encoded_x),
        )


def header_fault(head: Any, limits: ReadoutLimits, coils_seen: int | None) -> str | None:
    """What in ``head`` (an ``AcquisitionHeader``) contradicts the header, or None.

    ``coils_seen`` is the coil count of the stream's first imaging readout: the
    expectation where the header names none.
    """
    stored = int(head.number_of_samples)
    pre, post = int(head.discard_pre), int(head.discard_post)
    try:  # the ADC's discarded samples are dropped downstream
        samples, center = kept_samples(stored, int(head.center_sample), pre, post)
    except ValueError as exc:
        return f"readout of {stored} samples: {exc}"
    if samples not in limits.samples:
        fits = " or ".join(str(n) for n in limits.samples)
        has = readout_size_text(stored, pre, post)
        if samples > limits.encoded_x:
            return f"{has}; the header's matrix size x says {fits}"
        try:  # a partial (asymmetric) echo: zero-filled to the encoded size downstream
            partial_echo_offset(samples, center, limits.encoded_x)
        except ValueError as exc:
            return f"{has}; the header's matrix size x says {fits}, and as a partial echo: {exc}"
    coils = int(head.active_channels)
    expected = limits.coils if limits.coils is not None else coils_seen
    if expected is not None and coils != expected:
        source = "receiverChannels" if limits.coils is not None else "the first readout"
        return f"readout has {coils} coils; {source} says {expected}"
    return None


def counter_fault(head: Any, limits: ReadoutLimits) -> str | None:
    """Which counter of ``head`` lies outside the encoding limits, or None."""
    idx = head.idx
    for name, value, count in (
        ("slice", idx.slice, limits.n_slices),
        ("phase", idx.phase, limits.n_phases),
        ("repetition", idx.repetition, limits.n_repetitions),
        ("kspace_encode_step_1", idx.kspace_encode_step_1, limits.n_ky),
        ("kspace_encode_step_2", idx.kspace_encode_step_2, limits.n_kz),
    ):
        if not 0 <= int(value) < count:
            return f"{name}={int(value)} outside the encoding limits 0..{count - 1}"
    return None


def finite_fault(data: np.ndarray) -> str | None:
    """``(coils, samples)`` complex readout: how many samples are NaN or infinite, or None."""
    flat = np.asarray(data).view(np.float32) if data.dtype == np.complex64 else np.asarray(data)
    ok = np.isfinite(flat)
    if ok.all():
        return None
    bad = int(ok.size - np.count_nonzero(ok))
    return f"readout has {bad} non-finite (NaN or infinite) sample values"


class LineLedger:
    """Lines seen so far, to find duplicates; remembers the latest ``capacity`` slices.

    A line is identified by its slice, phase, repetition, kz, average, contrast,
    set, segment and whether it is calibration-only (a separate calibration
    readout of a line that is also imaged is no duplicate), and its ky.
    """

    def __init__(self, capacity: int = LEDGER_KEYS) -> None:
        self.capacity = capacity
        self._lines: OrderedDict[tuple[int, ...], int] = OrderedDict()

    def add(self, head: Any, calibration_only: bool) -> bool:
        """Record the line of ``head``; False when it was seen before."""
        idx = head.idx
        key = (int(idx.slice), int(idx.phase), int(idx.repetition),
               int(idx.kspace_encode_step_2), int(idx.average), int(idx.contrast),
               int(idx.set), int(idx.segment), int(calibration_only))
        bit = 1 << int(idx.kspace_encode_step_1)
        seen = self._lines.get(key, 0)
        if seen & bit:
            return False
        self._lines[key] = seen | bit
        if not seen:
            if len(self._lines) > self.capacity:
                self._lines.popitem(last=False)
        return True
