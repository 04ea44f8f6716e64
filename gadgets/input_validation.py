"""``input_validation``: every imaging readout checked against the header before analysis.

Put it first in a chain that analyses data. Each imaging readout is checked
(``kmtr_stream.validation``): sample and coil counts against the header,
counters against the encoding limits, NaN/Inf samples, duplicate lines. A
readout that fails gets a ``DataFault`` ahead of it, which the slice buffer
keeps with its slice; the first fault of each cause also gets one ERROR
(code ``invalid_data``) to the client, later ones are counted and logged
once at end of stream. Under ``[chain.inputs] validation = "strict"`` a bad
readout is dropped and its slice refused; under ``"lenient"`` a readout
that can still be analysed (a coil count that only contradicts the header,
a counter outside the limits) passes on, the others are dropped, and the
slice's result is flagged. Readouts whose data cannot be buffered (a wrong
sample count, ky outside the limits, non-finite samples, a duplicate) are
dropped under both policies. Noise and other non-imaging readouts pass
unchecked (the noise scan is ``noise_prewhitening``'s to judge).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ismrmrd

from kmtr_stream.chain.gadget import ChainContext, Gadget
from kmtr_stream.chain.registry import register
from kmtr_stream.kspace.buffer import is_non_imaging
from kmtr_stream.messages import DataFault, ErrorReport
from kmtr_stream.validation import (
    COUNTER,
    DUPLICATE,
    HEADER,
    LENIENT,
    NON_FINITE,
    LineLedger,
    ReadoutLimits,
    counter_fault,
    finite_fault,
    header_fault,
)


@register("input_validation")
class InputValidationGadget(Gadget):
    """Checks imaging readouts against the header; bad ones are reported, refused or flagged."""

    @dataclass(frozen=True)
    class Params:
        """``input_validation`` takes no parameters: the policy is ``[chain.inputs] validation``."""

    handles = (ismrmrd.Acquisition,)

    def __init__(self, gadget_id: str, params: Any, context: ChainContext) -> None:
        super().__init__(gadget_id, params, context)
        self.limits = ReadoutLimits.from_header(context.header, context.geometry)
        self.lenient = context.validation == LENIENT
        self.ledger = LineLedger()
        self._coils_seen: int | None = None
        #: Readouts that failed, per cause.
        self.faults: dict[str, int] = {}

    def describe_state(self) -> str | None:
        if not self.faults:
            return None
        return "faults so far: " + ", ".join(f"{n} {c}" for c, n in sorted(self.faults.items()))

    def _check(self, acq: ismrmrd.Acquisition) -> tuple[str, str, bool] | None:
        """``(cause, detail, passes)`` of the first check ``acq`` fails, or None."""
        head = acq  # an Acquisition reads its header fields without copying the header
        detail = header_fault(head, self.limits, self._coils_seen)
        if detail is not None:
            # A coil count that only contradicts the header still buffers (lenient).
            fits = self._coils_seen in (None, int(head.active_channels))
            kept = (int(head.number_of_samples) - int(head.discard_pre)
                    - int(head.discard_post))
            samples_ok = kept in self.limits.samples
            return HEADER, detail, self.lenient and fits and samples_ok
        detail = counter_fault(head, self.limits)
        if detail is not None:
            ky_ok = 0 <= int(head.idx.kspace_encode_step_1) < self.limits.n_ky
            return COUNTER, detail, self.lenient and ky_ok
        detail = finite_fault(acq.data)
        if detail is not None:
            return NON_FINITE, detail, False
        calib_only = acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
        if not self.ledger.add(head, calib_only):
            return DUPLICATE, "the same line arrived before; this copy is not used", False
        return None

    def process(self, message: Any) -> Iterable[Any]:
        acq: ismrmrd.Acquisition = message
        if is_non_imaging(acq):
            yield acq
            return
        fault = self._check(acq)
        if self._coils_seen is None and (fault is None or fault[2]):
            self._coils_seen = int(acq.active_channels)
        if fault is None:
            yield acq
            return
        cause, detail, passes = fault
        times = self.context.current_message_times()
        index = times.message_index if times is not None else None
        idx = acq.idx
        key = (int(idx.slice), int(idx.phase), int(idx.repetition))
        n = self.faults[cause] = self.faults.get(cause, 0) + 1
        if n == 1:
            yield self._report(cause, detail, index, key, int(idx.kspace_encode_step_1), passes)
        yield DataFault(
            cause=cause, detail=detail, key=key, message_index=index, dropped=not passes,
            last_in_slice=acq.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE),
            last_in_measurement=acq.is_flag_set(ismrmrd.ACQ_LAST_IN_MEASUREMENT),
        )
        if passes:
            yield acq

    def _report(self, cause: str, detail: str, index: int | None, key: tuple[int, int, int],
                ky: int, passes: bool) -> ErrorReport:
        """The one ERROR of ``cause`` in this stream."""
        policy = self.context.validation
        effect = ("processed, its result flagged" if passes else
                  "not used, its slice's result flagged" if self.lenient else
                  "not used, its slice refused")
        where = f"message #{index}: " if index is not None else ""
        text = (f"{where}{cause}: {detail} (slice {key[0]} phase {key[1]} repetition {key[2]} "
                f"ky {ky}); readout {effect} (validation = {policy!r}); later readouts with "
                "this fault are counted, not reported one by one")
        return self.data_error(
            text,
            {"cause": cause, "slice": key[0], "phase": key[1], "repetition": key[2],
             "kspace_encode_step_1": ky, "policy": policy},
            index,
        )

    def flush(self) -> Iterable[Any]:
        repeated = {c: n for c, n in self.faults.items() if n > 1}
        if repeated:
            self.context.logger.error(
                "connection %s: %s: readouts that failed validation: %s",
                self.context.connection_id, self.id,
                ", ".join(f"{n} {c}" for c, n in sorted(repeated.items())),
            )
        self.faults.clear()  # reported: the stream is over
        return ()
