"""Message types that flow on the wire and between gadgets.

Wire messages follow the MRD streaming protocol. ISMRMRD payloads use the
``ismrmrd`` package's own classes (``ismrmrd.Acquisition``, ``ismrmrd.Image``,
``ismrmrd.Waveform``); the small control messages are frozen dataclasses here.
Internal messages (``SliceKSpace``, ``SliceResult``) never leave the process.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import ismrmrd
import numpy as np

from kmtr_stream.backend import to_numpy


class MessageId(IntEnum):
    """MRD streaming-protocol message ids (uint16 on the wire)."""

    CONFIG_FILE = 1
    CONFIG_TEXT = 2
    HEADER = 3
    CLOSE = 4
    TEXT = 5
    ERROR = 8
    ACQUISITION = 1008
    IMAGE = 1022
    WAVEFORM = 1026
    #: k-MTR results: msgpack map with an explicit schema version.
    RESULT = 1500


#: Schema version carried in every RESULT and ERROR payload.
RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ConfigFile:
    """CONFIG_FILE (1): the name of a server-side chain config (<= 1023 UTF-8 bytes)."""

    name: str


@dataclass(frozen=True)
class ConfigText:
    """CONFIG_TEXT (2): a chain config sent as text."""

    text: str


@dataclass(frozen=True)
class XmlHeader:
    """HEADER (3): the ISMRMRD XML header, as text."""

    xml: str


@dataclass(frozen=True)
class Close:
    """CLOSE (4): end of stream."""


@dataclass(frozen=True)
class Text:
    """TEXT (5): free text (log lines, notes)."""

    text: str


@dataclass(frozen=True)
class ErrorReport:
    """ERROR (8): an explicit error reported to the client.

    Attributes:
        code: machine-readable code (``KmtrError.code`` of the cause).
        message: human-readable description naming what was wrong.
        gadget: id of the failing gadget, if any.
        message_index: index of the offending incoming message, if known.
        context: extra fields (slice, phase, ...), msgpack-serialisable.
    """

    code: str
    message: str
    gadget: str | None = None
    message_index: int | None = None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """RESULT (1500): a msgpack map of task outputs.

    Attributes:
        kind: what the result describes ("slice", "subject", "trace", ...).
        body: msgpack-serialisable map (str keys; numbers, strings, lists, maps).
    """

    kind: str
    body: dict[str, Any]


WireMessage = (
    ConfigFile
    | ConfigText
    | XmlHeader
    | Close
    | Text
    | ErrorReport
    | Result
    | ismrmrd.Acquisition
    | ismrmrd.Image
    | ismrmrd.Waveform
)


@dataclass(frozen=True)
class DataFault:
    """Internal: validation found bad data in one readout, or in the whole stream.

    Emitted by the gadget that found it (``input_validation``, ``noise_prewhitening``)
    ahead of the readout, if that is passed on at all; the slice buffer keeps the cause
    with the slice (refusing or flagging it), the subject aggregation counts it.

    Attributes:
        cause: one of ``kmtr_stream.validation.CAUSES``.
        detail: what was wrong, for logs and errors.
        key: ``(slice, phase, repetition)`` of the affected slice; None when every
            slice from here on is affected (a failed noise calibration).
        message_index: index of the offending incoming message, if known.
        dropped: True when the readout was not passed on (it carries no data then,
            only its trigger flags below).
        last_in_slice: the readout was flagged ACQ_LAST_IN_SLICE.
        last_in_measurement: the readout was flagged ACQ_LAST_IN_MEASUREMENT.
    """

    cause: str
    detail: str
    key: tuple[int, int, int] | None = None
    message_index: int | None = None
    dropped: bool = False
    last_in_slice: bool = False
    last_in_measurement: bool = False


@dataclass(frozen=True)
class SliceRefused:
    """Internal: a slice the slice buffer refused (strict validation or a resource limit).

    It takes the place of the slice's ``SliceKSpace`` (and so of its result); its
    ERROR went to the client already.

    Attributes:
        slice: slice counter.
        phase: cardiac phase counter.
        repetition: repetition counter.
        n_slices: slices in the measurement.
        n_phases: phases in the measurement.
        causes: the validation causes that refused it, sorted, or the resource limit's name.
        last_in_measurement: True when this slice closes the measurement.
    """

    slice: int
    phase: int
    repetition: int
    n_slices: int
    n_phases: int
    causes: tuple[str, ...]
    last_in_measurement: bool = False


@dataclass
class SliceKSpace:
    """Buffered undersampled k-space of one slice and phase, emitted by a trigger.

    Attributes:
        kspace: ``(coils, ky, kx)`` complex64 array on the chain's backend
            (``numpy.ndarray`` or ``cupy.ndarray``); lines not acquired are zero.
        mask: ``(ky,)`` bool array, True where a phase-encode line arrived.
        slice: slice counter.
        phase: cardiac phase counter.
        repetition: repetition counter.
        n_slices: number of slices in the measurement (from the header).
        n_phases: number of phases in the measurement (from the header).
        trigger: why it was emitted: "last_in_slice", "coverage", "progressive"
            or "flush".
        final: True when no more lines will be added to this buffer.
        last_in_measurement: True for the buffer that closes the measurement.
        voxel_size_mm: ``(dx, dy, dz)`` in mm of the reconstructed grid.
        header: the parsed ISMRMRD XML header of the stream.
        t_last_line_ns: ``time.perf_counter_ns()`` when its last line arrived.
        acquisition: ``ismrmrd.AcquisitionHeader`` of the slice's k-space centre
            line (its first line until the centre arrives): the geometry and
            time stamps its images carry. None when unknown.
        calibration_region: ky range of the buffer's calibration region (what its
            compression and normalisation used), when the slice buffer knows it.
        flags: validation causes that affect this slice (lenient policy, or a failed
            noise calibration), sorted; empty when its data passed every check.
    """

    kspace: Any
    mask: Any
    slice: int
    phase: int
    repetition: int
    n_slices: int
    n_phases: int
    trigger: str
    final: bool
    last_in_measurement: bool
    voxel_size_mm: tuple[float, float, float]
    header: Any = None
    t_last_line_ns: int = 0
    acquisition: Any = None
    calibration_region: builtins.slice | None = None
    flags: tuple[str, ...] = ()

    @property
    def lines_used(self) -> int:
        """Number of phase-encode lines that contributed."""
        return int(to_numpy(self.mask).sum())


@dataclass(frozen=True)
class PreparedSlice:
    """A finished slice whose network input is ready: ``kmtr_streaming`` (``hand_off``)
    to ``kmtr_network``, which runs the network, usually in a thread of its own.

    Attributes:
        slice: the slice on the model grid (k-space dropped, model mask and voxel size).
        inputs: its ``kmtr_stream.model.streaming.SliceInputs``.
        network: the model's shared batcher that runs ``inputs`` (``CombiningBatcher``).
        t0_ns: ``time.perf_counter_ns()`` when the trigger's work on it began.
    """

    slice: SliceKSpace
    inputs: Any
    network: Any
    t0_ns: int


@dataclass
class SliceResult:
    """Per-slice/phase network outputs, emitted by an inference gadget.

    Attributes:
        slice: slice counter.
        phase: cardiac phase counter.
        repetition: repetition counter.
        n_slices: slices in the measurement.
        n_phases: phases in the measurement.
        labels: ``(ny, nx)`` int16 ACDC label map (0 bg, 1 RV, 2 LV myo, 3 LV).
        latent: ``(d,)`` float32 latent vector (numpy) of this slice/phase.
        lines_used: phase-encode lines that went into it.
        final: False for an early (progressive) result that will be refined.
        last_in_measurement: True for the result that closes the measurement.
        voxel_size_mm: ``(dx, dy, dz)`` in mm.
        timings_ms: named latencies in milliseconds.
        flags: validation causes that affect this result (``SliceKSpace.flags``).
        slice_offset_mm: the slice's position along its normal (``position .
            slice_dir`` of its acquisitions), from which the subject's slice
            spacing is taken; None when the acquisitions do not say.
    """

    slice: int
    phase: int
    repetition: int
    n_slices: int
    n_phases: int
    labels: np.ndarray
    latent: np.ndarray
    lines_used: int
    final: bool
    last_in_measurement: bool
    voxel_size_mm: tuple[float, float, float]
    timings_ms: dict[str, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    slice_offset_mm: float | None = None


Message = WireMessage | SliceKSpace | SliceResult | DataFault | SliceRefused
