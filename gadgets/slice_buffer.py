"""Slice buffer gadget: gathers readouts per (slice, phase, repetition) and triggers.

Each buffer is ``(coils, ky, kx)`` complex64 on the chain's backend, indexed
by ``kspace_encode_step_1``, with a ``(ky,)`` mask beside it. When its trigger
fires (``kmtr_stream.kspace.triggers``) it goes downstream as a
``SliceKSpace``, intensity-normalised like the training data
(``kmtr_stream.kspace.normalisation``): optionally compressed to
``virtual_coils`` with the SVD of its own calibration region, then divided
by the RMS of coil 0 over that region, exactly as the simulator's training
data (``simulator.kspace.virtual_coil_buffer``). At most ``max_open_buffers`` are open;
opening one more evicts the oldest and reports it (ErrorReport "evicted" plus a
log line). Lines of a buffer that was already emitted as final or evicted are
dropped and logged, so no buffer is ever emitted twice as final.

Validation (``kmtr_stream.validation``): a ``DataFault`` from ``input_validation``
or ``noise_prewhitening`` stays with its slice (a dropped readout still counts
for the trigger with its flags). Under ``validation = "strict"`` a slice with a
fault is refused when it would have been emitted as final: an ERROR (code
``invalid_data``) naming the slice and the causes goes downstream with a
``SliceRefused`` in place of its ``SliceKSpace``; early (non-final) emissions of
such a slice are skipped. Under ``"lenient"``, and for causes that only flag (a
failed noise calibration, which affects every later slice), the slice is
emitted with the causes in ``SliceKSpace.flags``. A slice with faults and no
line that could be used gets its ERROR at its last line or at end of stream.

Resource limits (``max_coils``, ``max_buffered_bytes``): a slice whose buffer
they refuse is never allocated. It gets one ERROR (code ``limit``, naming the
limit, its value and the slice) at its first line; its later lines are dropped
and counted, and at its last line (or at end of stream) a ``SliceRefused``
whose cause is the limit's name, so the subject result lists it as refused.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ismrmrd

from kmtr_stream.backend import array_module
from kmtr_stream.chain.gadget import ChainContext, Gadget, param
from kmtr_stream.chain.registry import register
from kmtr_stream.errors import BufferEvictedError, GadgetError, LimitError
from kmtr_stream.kspace.buffer import (
    BufferKey,
    BufferStore,
    KSpaceBuffer,
    is_calibration,
    is_non_imaging,
)
from kmtr_stream.kspace.geometry import EncodingGeometry
from kmtr_stream.kspace.normalisation import compress_and_normalise, normalise_kspace
from kmtr_stream.kspace.triggers import (
    MODES,
    Emission,
    TriggerPolicy,
    calibration_region,
    decide,
    decide_flush,
)
from kmtr_stream.kspace.xp import get_array_module
from kmtr_stream.messages import DataFault, ErrorReport, SliceKSpace, SliceRefused
from kmtr_stream.validation import FLAG_ONLY, STRICT


def condition_buffer(kspace: Any, region: slice, n_virtual: int, normalise: bool) -> Any:
    """A buffer as the training data has it: compressed to ``n_virtual`` coils, normalised.

    Args:
        kspace: ``(coils, ky, kx)`` complex64 (NumPy or CuPy); normalised in place
            when it is not compressed.
        region: ky range of its calibration region.
        n_virtual: virtual coils (0: keep the coils).
        normalise: divide by coil 0's RMS over the region.

    Raises:
        ValueError: more virtual coils than the buffer has.
    """
    if n_virtual > 0:
        if n_virtual > kspace.shape[0]:
            raise ValueError(
                f"virtual_coils={n_virtual} but the buffer has {kspace.shape[0]} coils"
            )
        out, _, scale = compress_and_normalise(kspace, n_virtual, region)
        if not normalise:
            out *= get_array_module(out).float32(scale)
        return out
    if normalise:
        return normalise_kspace(kspace, region, out=kspace)
    return kspace


@register("slice_buffer")
class SliceBufferGadget(Gadget):
    """Buffers undersampled k-space per slice and phase; emits ``SliceKSpace`` on triggers."""

    @dataclass(frozen=True)
    class Params:
        """Parameters of ``slice_buffer``."""

        trigger: str = param(
            "last_in_slice", choices=MODES,
            doc="when a buffer is emitted: last_in_slice | coverage | progressive | flush",
        )
        coverage_fraction: float = param(
            0.3, min=0.0, max=1.0,
            doc="fraction of the encoded ky lines needed (besides the calibration region) "
            "for the coverage step",
        )
        progressive_fractions: tuple[float, ...] = param(
            (0.4, 0.5, 0.6),
            doc="later fractions of the encoded ky lines at which progressive mode refines",
        )
        calibration_lines: int = param(
            0, min=0, max=4096,
            doc="width of the central calibration region in ky lines; 0 = from the lines "
            "flagged parallel-calibration",
        )
        max_open_buffers: int = param(
            64, min=1, max=1 << 16, doc="most buffers open at once; the oldest is evicted",
        )
        normalise: bool = param(
            True, doc="apply the training data's intensity normalisation on emission",
        )
        slice_spacing_mm: float = param(
            0.0, min=0.0, max=1000.0,
            doc="dz where the slice positions cannot give it (one slice, positions not filled "
            "in); 0 = header user parameter slice_spacing_mm, else the slice thickness",
        )
        virtual_coils: int = param(
            0, min=0, max=128,
            doc="compress each emitted buffer to this many virtual coils with the SVD of its "
            "calibration region, as the training data; 0 = keep the coils",
        )

    handles = (ismrmrd.Acquisition, DataFault)

    def __init__(self, gadget_id: str, params: Any, context: ChainContext) -> None:
        super().__init__(gadget_id, params, context)
        for f in params.progressive_fractions:
            if not 0.0 < float(f) <= 1.0:
                raise GadgetError(
                    gadget_id, None, f"progressive_fractions must lie in (0, 1], got {f}"
                )
        self.xp = array_module(context.backend)
        spacing = float(params.slice_spacing_mm)
        geo = context.geometry
        self.geo: EncodingGeometry = (
            geo if spacing == 0.0 else dataclasses.replace(
                geo, voxel_size_mm=(*geo.voxel_size_mm[:2], spacing)
            )
        )
        self.policy = TriggerPolicy(
            mode=params.trigger,
            n_ky=self.geo.n_ky,
            center_line=self.geo.center_line,
            coverage_fraction=float(params.coverage_fraction),
            progressive_fractions=tuple(float(f) for f in params.progressive_fractions),
            calibration_lines=int(params.calibration_lines),
            expect_calibration=self.geo.expect_calibration,
        )
        limits = context.limits
        #: The gadget's own cap or the server's per-connection limit, whichever is lower.
        self.max_open = min(int(params.max_open_buffers), limits.max_open_buffers)
        self._cap_name = ("max_open_buffers (gadget parameter)"
                          if self.max_open == int(params.max_open_buffers)
                          else "max_open_buffers (server limit)")
        self.store = BufferStore(self.xp, self.geo.n_ky, self.max_open)
        self.dropped_lines = 0
        self.skipped_lines = 0
        self.evictions = 0
        self._measurement_closed = False
        self._warned_keys: set[BufferKey] = set()
        #: Per open buffer: header of its centre line (else first line), for image geometry.
        self._geometry: dict[BufferKey, ismrmrd.AcquisitionHeader] = {}
        self.strict = context.validation == STRICT
        #: Validation causes per slice not emitted as final yet.
        self.faults: dict[BufferKey, set[str]] = {}
        #: Causes that affect every slice from now on (a failed noise calibration).
        self.stream_flags: set[str] = set()
        self.refused = 0
        #: Slices refused by a resource limit: one ERROR each, their later lines dropped.
        self.over_limit: set[BufferKey] = set()
        self.over_limit_lines = 0
        #: Limit-refused slices whose SliceRefused has not gone out yet, with the limit.
        self._limit_pending: dict[BufferKey, str] = {}

    def _expected_buffers(self) -> int:
        return self.geo.n_slices * self.geo.n_phases * self.geo.n_repetitions

    def describe_state(self) -> str | None:
        """Open buffers and the lines they hold (lost when the stream is aborted)."""
        if not self.store.open:
            return None
        lines = sum(b.state.n_lines for b in self.store.open.values())
        n = len(self.store.open)
        return f"{n} slice buffer{'s' if n != 1 else ''} open ({lines} lines)"

    def _emit(self, buf: KSpaceBuffer, em: Emission) -> SliceKSpace:
        xp = self.xp
        if em.final:
            self.store.close(buf.key)
            kspace = buf.kspace  # closed for good: hand the array over without a copy
            mask = buf.mask
        else:
            kspace = buf.kspace.copy()
            mask = buf.mask.copy()
        region = calibration_region(self.policy, buf.state)
        try:
            kspace = condition_buffer(
                kspace, region, int(self.params.virtual_coils), bool(self.params.normalise)
            )
        except ValueError as exc:
            raise GadgetError(self.id, None, str(exc)) from exc
        last = self._closes_measurement(buf.last_in_measurement) if em.final else False
        geometry = self._geometry.pop(buf.key, None) if em.final else self._geometry.get(buf.key)
        return SliceKSpace(
            kspace=kspace,
            mask=xp.asarray(mask),
            slice=buf.key.slice,
            phase=buf.key.phase,
            repetition=buf.key.repetition,
            n_slices=self.geo.n_slices,
            n_phases=self.geo.n_phases,
            trigger=em.trigger,
            final=em.final,
            last_in_measurement=last,
            voxel_size_mm=self.geo.voxel_size_mm,
            header=self.context.header,
            t_last_line_ns=buf.t_last_line_ns,
            acquisition=geometry,
            calibration_region=region,
            flags=tuple(sorted(self.faults.get(buf.key, set()) | self.stream_flags)),
        )

    def _closes_measurement(self, flagged: bool) -> bool:
        """Whether a final emission now closes the measurement (once per stream)."""
        if self._measurement_closed:
            return False
        # A limit-refused slice is done once its SliceRefused went out.
        done = len(self.store.closed) + len(self.over_limit) - len(self._limit_pending)
        all_done = not self.store.open and done >= self._expected_buffers()
        self._measurement_closed = flagged or all_done
        return self._measurement_closed

    def _release(self, buf: KSpaceBuffer, em: Emission) -> Iterable[Any]:
        """Emit ``buf`` for ``em``, or refuse it when strict validation says so."""
        causes = self.faults.get(buf.key, set()) - FLAG_ONLY
        if causes and self.strict:
            if em.final:
                self.store.close(buf.key)
                self._geometry.pop(buf.key, None)
                yield from self._refuse(buf.key, buf.last_in_measurement)
            return
        out = self._emit(buf, em)
        if em.final:
            self.faults.pop(buf.key, None)
        yield out

    def _refuse(self, key: BufferKey, last_flag: bool) -> Iterable[Any]:
        """The explicit error of a slice that is not analysed, and its ``SliceRefused``."""
        causes = tuple(sorted(self.faults.pop(key, set()) - FLAG_ONLY)) or ("no usable line",)
        self.store.closed.add(key)
        self.refused += 1
        policy = self.context.validation
        text = (f"slice {key.slice} phase {key.phase} repetition {key.repetition} refused: its "
                f"readouts failed validation ({', '.join(causes)}; validation = {policy!r}); "
                "no result for it")
        yield self.data_error(
            text,
            {"slice": key.slice, "phase": key.phase, "repetition": key.repetition,
             "causes": list(causes), "policy": policy, "refused": True},
        )
        yield SliceRefused(
            slice=key.slice, phase=key.phase, repetition=key.repetition,
            n_slices=self.geo.n_slices, n_phases=self.geo.n_phases, causes=causes,
            last_in_measurement=self._closes_measurement(last_flag),
        )

    def _on_fault(self, fault: DataFault) -> Iterable[Any]:
        """Keep ``fault`` with its slice; a dropped readout still counts for the trigger."""
        yield fault
        if fault.key is None:
            self.stream_flags.add(fault.cause)
            return
        key = BufferKey(*fault.key)
        if key in self.store.closed:
            return  # its slice went out before this readout: it was analysed without it
        self.faults.setdefault(key, set()).add(fault.cause)
        if not fault.dropped:
            return  # the readout itself follows
        buf = self.store.get(key)
        if buf is None:
            if fault.last_in_slice:  # the slice ends without a line that could be used
                yield from self._refuse(key, fault.last_in_measurement)
            return
        if fault.last_in_measurement:
            buf.last_in_measurement = True
        em = decide(self.policy, buf.state, fault.last_in_slice)
        if em is not None:
            yield from self._release(buf, em)

    def _evicted_report(self, buf: KSpaceBuffer) -> ErrorReport:
        self.evictions += 1
        k = buf.key
        text = (
            f"slice buffer slice={k.slice} phase={k.phase} repetition={k.repetition} evicted "
            f"with {buf.state.n_lines} of {buf.mask.shape[0]} lines: "
            f"{self._cap_name}={self.max_open} reached"
        )
        self.context.logger.warning("%s: %s", self.id, text)
        return ErrorReport(
            code=BufferEvictedError.code,
            message=text,
            gadget=self.id,
            context={
                "slice": k.slice, "phase": k.phase, "repetition": k.repetition,
                "lines": buf.state.n_lines,
            },
        )

    def process(self, message: Any) -> Iterable[Any]:
        if type(message) is DataFault:
            yield from self._on_fault(message)
            return
        acq: ismrmrd.Acquisition = message
        if is_non_imaging(acq):
            self.skipped_lines += 1
            return
        idx = acq.idx
        key = BufferKey(int(idx.slice), int(idx.phase), int(idx.repetition))
        ky = int(idx.kspace_encode_step_1)
        if not 0 <= ky < self.store.n_ky:
            raise GadgetError(
                self.id, None, f"kspace_encode_step_1={ky} outside 0..{self.store.n_ky - 1}"
            )
        buf = self.store.get(key)
        if buf is None:
            if key in self.store.closed:
                self._drop(key)
                return
            if key in self.over_limit:
                self.over_limit_lines += 1  # its one ERROR was sent with its first line
                yield from self._limit_end(key, acq)
                return
            coils, kx = int(acq.active_channels), int(acq.number_of_samples)
            try:
                self._check_allocation(key, coils, kx)
            except LimitError as exc:
                if len(self.over_limit) >= 1 << 16:  # ever-new keys cannot grow it unbounded
                    raise
                self.over_limit.add(key)
                self._limit_pending[key] = exc.limit
                yield self._limit_error(key, exc)
                yield from self._limit_end(key, acq)
                return
            buf, evicted = self.store.open_buffer(key, coils, kx)
            if evicted is not None:
                self._geometry.pop(evicted.key, None)
                yield self._evicted_report(evicted)
        coils, _, kx = buf.kspace.shape
        if (int(acq.active_channels), int(acq.number_of_samples)) != (coils, kx):
            raise GadgetError(
                self.id, None,
                f"readout of {acq.active_channels} coils x {acq.number_of_samples} samples "
                f"does not fit buffer {key} of {coils} coils x {kx} samples",
            )
        if ky == self.policy.center_line or key not in self._geometry:
            self._geometry[key] = acq.getHead()
        is_calib = is_calibration(acq)
        buf.insert(self.policy, ky, self.xp.asarray(acq.data), is_calib)
        buf.t_last_line_ns = time.perf_counter_ns()
        if acq.is_flag_set(ismrmrd.ACQ_LAST_IN_MEASUREMENT):
            buf.last_in_measurement = True
        em = decide(self.policy, buf.state, acq.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE))
        if em is not None:
            yield from self._release(buf, em)

    def _check_allocation(self, key: BufferKey, coils: int, kx: int) -> None:
        """Refuse a buffer the connection's limits do not allow, before allocating it."""
        limits = self.context.limits
        if coils > limits.max_coils:
            raise LimitError("max_coils", limits.max_coils, f"readout of {coils} coils")
        need = coils * self.store.n_ky * kx * 8
        held = self.store.bytes_open()
        if len(self.store.open) >= self.store.max_open:
            held -= next(iter(self.store.open.values())).kspace.nbytes  # the oldest goes
        if held + need > limits.max_buffered_bytes:
            raise LimitError(
                "max_buffered_bytes", limits.max_buffered_bytes,
                f"slice buffer slice={key.slice} phase={key.phase} repetition={key.repetition} "
                f"of {coils} coils x {self.store.n_ky} ky x {kx} kx complex64 ({need} bytes) "
                f"on top of {held} bytes in open buffers",
            )

    def _limit_error(self, key: BufferKey, exc: LimitError) -> ErrorReport:
        """The one ERROR of a slice a resource limit refused (its lines are dropped)."""
        text = (f"slice {key.slice} phase {key.phase} repetition {key.repetition} refused: "
                f"{exc}; its readouts are dropped, no result for it")
        self.context.logger.error("connection %s: %s: %s", self.context.connection_id,
                                  self.id, text)
        return ErrorReport(
            code=LimitError.code, message=text, gadget=self.id,
            context={"slice": key.slice, "phase": key.phase, "repetition": key.repetition,
                     "limit": exc.limit, "value": exc.value, "refused": True},
        )

    def _limit_end(self, key: BufferKey, acq: ismrmrd.Acquisition) -> Iterable[Any]:
        """On a limit-refused slice's last line: its SliceRefused, so the subject result
        lists it as refused (naming the limit) instead of missing."""
        if acq.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE) and key in self._limit_pending:
            yield self._limit_refusal(key, acq.is_flag_set(ismrmrd.ACQ_LAST_IN_MEASUREMENT))

    def _limit_refusal(self, key: BufferKey, last_flag: bool) -> SliceRefused:
        self.refused += 1
        return SliceRefused(
            slice=key.slice, phase=key.phase, repetition=key.repetition,
            n_slices=self.geo.n_slices, n_phases=self.geo.n_phases,
            causes=(self._limit_pending.pop(key),),
            last_in_measurement=self._closes_measurement(last_flag),
        )

    def _drop(self, key: BufferKey) -> None:
        self.dropped_lines += 1
        if key not in self._warned_keys:
            self._warned_keys.add(key)
            self.context.logger.info(
                "%s: line for slice=%d phase=%d repetition=%d after its buffer closed is dropped",
                self.id, key.slice, key.phase, key.repetition,
            )

    def flush(self) -> Iterable[Any]:
        out: list[Any] = []
        pending = list(self.store.open.values())
        lineless = [k for k in self.faults if k not in self.store.open]
        for i, buf in enumerate(pending):
            em = decide_flush(buf.state)
            if em is None:
                continue
            if i == len(pending) - 1 and not lineless and not self._limit_pending:
                # The stream ends here, so the last buffer closes the measurement.
                buf.last_in_measurement = True
            out.extend(self._release(buf, em))
        for i, key in enumerate(lineless):  # slices whose every readout was dropped
            if key not in self.store.closed:
                out.extend(self._refuse(key, i == len(lineless) - 1 and not self._limit_pending))
        unended = list(self._limit_pending)  # limit-refused slices whose last line never came
        for i, key in enumerate(unended):
            out.append(self._limit_refusal(key, i == len(unended) - 1))
        return out
