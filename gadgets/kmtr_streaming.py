"""``kmtr_streaming``: k-MTR with the per-line work done while the scan runs.

Takes the readouts themselves (after prewhitening and oversampling removal) in
place of ``slice_buffer``, ``model_grid`` and ``kmtr_inference``: it buffers
each (slice, phase, repetition) with the same slice buffer and triggers, and as
each line arrives it resamples it along kx, encodes it and adds it to the
buffer's running ky-mix (``kmtr_stream.model.streaming``). When a trigger fires
only the compression matrix and scales of the calibration region, the
frontend's non-linear end and the trunk are left; slices that are ready
together, in this stream or in other connected streams sharing the model, run
as one batch. Its outputs are those of ``kmtr_inference`` on the same lines.

With ``hand_off = true`` it stops at the network's input and yields a
``PreparedSlice`` per finished slice for a later ``kmtr_network`` gadget, which
runs the network in a thread of its own (``new_thread = true``) while this one
folds in the next slice's lines.

Protocols whose phase-encode field of view differs from the model's (ky lines
interpolated, not mapped line for line) take the batch path of
``slice_buffer`` -> ``model_grid`` -> ``kmtr_inference`` inside the gadget, with
the same outputs; ``describe_state`` says which path a stream takes.

Validation is the batch chain's: ``input_validation``'s ``DataFault`` messages go to
the same slice buffer, which flags (lenient) or refuses (strict) the slice; a refused
slice's running ky-mix is dropped with it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import ismrmrd
import numpy as np

from gadgets.kmtr_inference import KmtrInferenceGadget, streamed_timings
from gadgets.model_grid import ModelGridGadget
from gadgets.slice_buffer import SliceBufferGadget, condition_buffer
from kmtr_stream.backend import to_numpy
from kmtr_stream.chain.gadget import ChainContext, param
from kmtr_stream.chain.registry import register
from kmtr_stream.errors import BufferEvictedError, GadgetError, KmtrError
from kmtr_stream.kspace.buffer import BufferKey, is_non_imaging
from kmtr_stream.kspace.triggers import MODES, calibration_region
from kmtr_stream.messages import (
    DataFault,
    ErrorReport,
    PreparedSlice,
    SliceKSpace,
    SliceRefused,
    XmlHeader,
)
from kmtr_stream.model.batching import CombiningBatcher, auto_lanes, shared_batcher
from kmtr_stream.model.networks import KMTRModel
from kmtr_stream.model.streaming import (
    LinePlan,
    SliceAccumulator,
    SliceInputs,
    finish_slice,
    line_plan,
    run_network,
)


@register("kmtr_streaming")
class KmtrStreamingGadget(KmtrInferenceGadget):
    """Buffers readouts per slice, runs k-MTR's linear part per line, the rest on triggers.

    Yields what ``kmtr_inference`` yields for each emitted slice (an int16 label
    image, then a ``SliceResult`` whose timings add "finalize": the compression
    matrix and scales after the last line, and "batch": slices in the forward
    pass that ran it, other connections' included), and passes the slice buffer's ErrorReports on.
    """

    @dataclass(frozen=True)
    class Params:
        """Parameters of ``kmtr_streaming``."""

        model: str = param("default", doc="shipped weights name or path to a .safetensors file")
        image_series_index: int = param(1, min=0, max=65535, doc="series index of the label images")
        trigger: str = param(
            "last_in_slice", choices=MODES,
            doc="when a buffer is analysed: last_in_slice | coverage | progressive | flush "
            "(as slice_buffer)",
        )
        coverage_fraction: float = param(
            0.3, min=0.0, max=1.0, doc="coverage step's fraction of ky lines (as slice_buffer)",
        )
        progressive_fractions: tuple[float, ...] = param(
            (0.4, 0.5, 0.6), doc="progressive refinements (as slice_buffer)",
        )
        calibration_lines: int = param(
            0, min=0, max=4096,
            doc="calibration region width in ky lines; 0 = the lines flagged calibration",
        )
        max_open_buffers: int = param(64, min=1, max=1 << 16, doc="most buffers open at once")
        normalise: bool = param(True, doc="the training data's intensity normalisation")
        slice_spacing_mm: float = param(
            0.0, min=0.0, max=1000.0, doc="dz of voxel_size_mm (as slice_buffer)",
        )
        virtual_coils: int = param(
            4, min=0, max=128,
            doc="virtual coils of the calibration region's SVD compression; 0 = keep the coils",
        )
        grid_calibration_lines: int = param(
            12, min=1, max=4096,
            doc="central model-grid lines whose RMS normalises the input (as model_grid)",
        )
        max_batch: int = param(
            32, min=1, max=1024,
            doc="most slices in one forward pass (shared by every stream on the model)",
        )
        network_lanes: int = param(
            1, min=0, max=256,
            doc="forward passes at once across the streams sharing the model; 0 = one on a "
            "GPU, CPU cores over torch threads on a CPU (4 paced scanners, 2 cores: median "
            "-22 %, p99 +35 % against 1)",
        )
        hand_off: bool = param(
            False,
            doc="leave the network to a later kmtr_network gadget (give it new_thread = true "
            "so that the network runs while the next slice's lines are folded in)",
        )

    handles: ClassVar[tuple[type, ...]] = (ismrmrd.Acquisition, XmlHeader, DataFault)

    def __init__(self, gadget_id: str, params: Any, context: ChainContext) -> None:
        super().__init__(gadget_id, params, context)
        p = params
        self.buffer = SliceBufferGadget(f"{gadget_id}.buffer", SliceBufferGadget.Params(
            trigger=p.trigger, coverage_fraction=p.coverage_fraction,
            progressive_fractions=p.progressive_fractions,
            calibration_lines=p.calibration_lines, max_open_buffers=p.max_open_buffers,
            normalise=False, slice_spacing_mm=p.slice_spacing_mm, virtual_coils=0,
        ), context)
        self.grid = ModelGridGadget(f"{gadget_id}.grid", ModelGridGadget.Params(
            model=p.model, calibration_lines=p.grid_calibration_lines,
        ), context)
        net = self.model.net
        assert isinstance(net, KMTRModel)  # the base class checked the model's kind
        self.net = net
        self.plan: LinePlan | None = None
        if self.grid.plan is not None:
            g = self.grid.plan
            self.plan = line_plan(g.kx, g.ky, g.n_ky, g.n_kx, net.frontend)
        self.open: dict[BufferKey, SliceAccumulator] = {}
        lanes = int(p.network_lanes) or auto_lanes(self.model.device)
        self.batcher: CombiningBatcher[SliceInputs, Any] = shared_batcher(
            self.model, lambda batch: run_network(net, batch), int(p.max_batch), lanes
        )
        self.streamed = 0
        self.batch_path = 0
        #: Streamed slices whose calibration terms were ready before their last line.
        self.early_terms = 0

    @classmethod
    def check_placement(cls, params: Any, later: tuple[str, ...]) -> str | None:
        if params.hand_off and "kmtr_network" not in later:
            return ("hand_off = true needs a kmtr_network gadget after it "
                    "(nothing else runs the network on its slices)")
        return None

    def describe_state(self) -> str | None:
        path = "per-line (streaming)" if self.plan is not None else "batch (ky interpolated)"
        held = self.buffer.describe_state()
        return f"{path} path; {held}" if held else None

    # -- per line -------------------------------------------------------------
    def process(self, message: Any) -> Iterable[Any]:
        if isinstance(message, XmlHeader):
            yield from self.grid.process(message)
            return
        if isinstance(message, DataFault):
            # input_validation's verdict: the slice buffer flags or refuses the slice
            yield from self._handle(self.buffer.process(message))
            return
        acq: ismrmrd.Acquisition = message
        plan = self.plan
        if plan is None or is_non_imaging(acq):
            yield from self._handle(self.buffer.process(acq))
            return
        idx = acq.idx
        key = BufferKey(int(idx.slice), int(idx.phase), int(idx.repetition))
        ky = int(idx.kspace_encode_step_1)
        buf = self.buffer.store.get(key)
        old = None
        if buf is not None and 0 <= ky < buf.mask.shape[0] and buf.mask[ky]:
            old = buf.kspace[:, ky, :].copy()  # a repeated ky replaces the earlier line
        outs = list(self.buffer.process(acq))  # checks the line; may close the buffer
        if key in self.buffer.store.open or any(
            isinstance(o, SliceKSpace) and o.slice == key.slice and o.phase == key.phase
            and o.repetition == key.repetition for o in outs
        ):
            acc = self.open.get(key)
            if acc is None:
                acc = self.open[key] = SliceAccumulator(
                    self.net, plan, acq.active_channels, int(self.params.virtual_coils))
            if old is not None:
                acc.add_line(old, ky, -1.0)
            acc.add_line(acq.data, ky)
            held = self.buffer.store.open.get(key)
            if held is not None:  # still filling: calibration terms before the last line
                acc.note_line(ky, calibration_region(self.buffer.policy, held.state),
                              held.kspace, held.mask, bool(self.params.normalise))
        yield from self._handle(outs)

    def flush(self) -> Iterable[Any]:
        return list(self._handle(list(self.buffer.flush())))

    def on_abort(self) -> None:
        self.open.clear()

    # -- per emitted slice ----------------------------------------------------------
    def _handle(self, outs: Iterable[Any]) -> Iterable[Any]:
        """Analyse the emitted slices (those ready together as one batch); pass the rest."""
        ready: list[tuple[SliceKSpace, SliceInputs | None, int]] = []
        passed: list[Any] = []
        for out in outs:
            if isinstance(out, SliceKSpace):
                ready.append(self._prepare(out))
            else:
                if isinstance(out, ErrorReport) and out.code == BufferEvictedError.code:
                    c = out.context
                    self.open.pop(BufferKey(c["slice"], c["phase"], c["repetition"]), None)
                elif isinstance(out, SliceRefused):
                    self.open.pop(BufferKey(out.slice, out.phase, out.repetition), None)
                passed.append(out)
        yield from passed
        if not ready:
            return
        hand_off = bool(self.params.hand_off)
        streaming = [r[1] for r in ready if r[1] is not None]
        results: list[Any] = []
        if streaming and not hand_off:
            try:
                results = self.batcher.run_many(streaming)
            except KmtrError as exc:
                raise GadgetError(self.id, None, f"network failed: {exc}") from exc
        it = iter(results)
        for msg, inputs, t0 in ready:
            if inputs is None:
                yield from self._batch_path(msg, t0)
                continue
            self.streamed += 1
            self.early_terms += int(inputs.early_terms)
            on_grid = self._on_grid(msg, inputs.mask)
            if hand_off:  # kmtr_network runs it
                yield PreparedSlice(on_grid, inputs, self.batcher, t0)
                continue
            labels, latent, net_ms, batch = next(it)
            timings = streamed_timings(inputs, net_ms, batch, t0)
            yield from self.outputs(on_grid, labels, latent, timings)

    def _prepare(self, msg: SliceKSpace) -> tuple[SliceKSpace, SliceInputs | None, int]:
        t0 = time.perf_counter_ns()
        key = BufferKey(msg.slice, msg.phase, msg.repetition)
        acc = self.open.pop(key, None) if msg.final else self.open.get(key)
        if acc is None or self.plan is None or msg.calibration_region is None:
            return msg, None, t0
        geo = self.grid.plan
        assert geo is not None
        n_virtual = int(self.params.virtual_coils)
        want = self.model.net.cfg.n_coils
        got = n_virtual or int(msg.kspace.shape[0])
        if got != want:
            raise GadgetError(
                self.id, None,
                f"slice {msg.slice} phase {msg.phase}: {got} coils reach the network, the model "
                f"expects {want} (check virtual_coils)",
            )
        if n_virtual > msg.kspace.shape[0]:
            raise GadgetError(
                self.id, None,
                f"virtual_coils={n_virtual} but the buffer has {msg.kspace.shape[0]} coils",
            )
        inputs = finish_slice(
            acc, msg.kspace, to_numpy(msg.mask), msg.calibration_region, n_virtual,
            bool(self.params.normalise), geo.fov_y_mm, self.grid.fov_mm, geo.center_line,
            int(self.params.grid_calibration_lines),
        )
        return msg, inputs, t0

    def _on_grid(self, msg: SliceKSpace, mask: np.ndarray) -> SliceKSpace:
        """The slice as ``model_grid`` hands it on (model mask and voxel size), k-space dropped."""
        d = (self.grid.fov_mm / self.grid.n_kx, self.grid.fov_mm / self.grid.n_ky,
             float(msg.voxel_size_mm[2]))
        return dataclasses.replace(msg, kspace=None, mask=mask, voxel_size_mm=d)

    def _batch_path(self, msg: SliceKSpace, t0: int) -> Iterable[Any]:
        """Condition, resample and infer the whole buffer, as the batch chain does."""
        from kmtr_stream.model.inference import infer_slice

        region = msg.calibration_region or slice(0, 0)
        try:
            kspace = condition_buffer(msg.kspace, region, int(self.params.virtual_coils),
                                      bool(self.params.normalise))
        except ValueError as exc:
            raise GadgetError(self.id, None, str(exc)) from exc
        for gridded in self.grid.process(dataclasses.replace(msg, kspace=kspace)):
            try:
                labels, latent, net_ms = infer_slice(self.model, gridded)
            except KmtrError as exc:
                raise GadgetError(
                    self.id, None, f"slice {msg.slice} phase {msg.phase}: {exc}"
                ) from exc
            self.batch_path += 1
            timings = {"network": net_ms, "gadget": (time.perf_counter_ns() - t0) / 1e6}
            yield from self.outputs(gridded, labels, latent, timings)
