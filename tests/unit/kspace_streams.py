"""Synthetic ISMRMRD acquisition streams for the k-space gadget tests."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import ismrmrd
import ismrmrd.xsd
import numpy as np

from kmtr_stream.chain.gadget import ChainContext, Gadget
from kmtr_stream.chain.stages import run_gadgets


def header_xml(
    encoded_x: int,
    recon_x: int,
    n_ky: int,
    n_slices: int = 1,
    n_phases: int = 1,
    n_reps: int = 1,
    center: int | None = None,
    calibration_mode: str | None = None,
    rnbw: float | None = None,
    fov_mm: tuple[float, float, float] = (320.0, 320.0, 8.0),
    slice_spacing_mm: float | None = None,
) -> str:
    """An ISMRMRD XML header for a 2-D Cartesian multi-slice, multi-phase stream."""
    c = n_ky // 2 if center is None else center
    pi = ""
    if calibration_mode:
        pi = (
            "<parallelImaging><accelerationFactor><kspace_encoding_step_1>4"
            "</kspace_encoding_step_1><kspace_encoding_step_2>1</kspace_encoding_step_2>"
            f"</accelerationFactor><calibrationMode>{calibration_mode}</calibrationMode>"
            "</parallelImaging>"
        )
    asi = ""
    if rnbw is not None:
        asi = (
            "<acquisitionSystemInformation><relativeReceiverNoiseBandwidth>"
            f"{rnbw}</relativeReceiverNoiseBandwidth></acquisitionSystemInformation>"
        )
    fx = fov_mm[0] * encoded_x / recon_x
    user = ""
    if slice_spacing_mm is not None:
        user = (
            "<userParameters><userParameterDouble><name>slice_spacing_mm</name>"
            f"<value>{slice_spacing_mm}</value></userParameterDouble></userParameters>"
        )

    def lim(name: str, n: int, centre: int = 0) -> str:
        body = f"<minimum>0</minimum><maximum>{n - 1}</maximum><center>{centre}</center>"
        return f"<{name}>{body}</{name}>"

    return (
        '<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
        f"{asi}<experimentalConditions><H1resonanceFrequency_Hz>63500000"
        "</H1resonanceFrequency_Hz></experimentalConditions><encoding><encodedSpace><matrixSize>"
        f"<x>{encoded_x}</x><y>{n_ky}</y><z>1</z>"
        f"</matrixSize><fieldOfView_mm><x>{fx}</x><y>{fov_mm[1]}</y><z>{fov_mm[2]}</z>"
        f"</fieldOfView_mm></encodedSpace><reconSpace><matrixSize><x>{recon_x}</x><y>{n_ky}</y>"
        f"<z>1</z></matrixSize><fieldOfView_mm><x>{fov_mm[0]}</x><y>{fov_mm[1]}</y>"
        f"<z>{fov_mm[2]}</z></fieldOfView_mm></reconSpace><encodingLimits>"
        f"{lim('kspace_encoding_step_1', n_ky, c)}{lim('slice', n_slices)}"
        f"{lim('phase', n_phases)}{lim('repetition', n_reps)}</encodingLimits>"
        f"<trajectory>cartesian</trajectory>{pi}</encoding>{user}</ismrmrdHeader>"
    )


def parse(xml: str) -> Any:
    """Parsed ``ismrmrdHeader`` of an XML text."""
    return ismrmrd.xsd.CreateFromDocument(xml)


def acquisition(
    data: np.ndarray,
    ky: int = 0,
    slice_: int = 0,
    phase: int = 0,
    rep: int = 0,
    flags: Sequence[int] = (),
    dwell_us: float = 2.0,
) -> ismrmrd.Acquisition:
    """One readout of ``(coils, kx)`` data with counters and flags set."""
    acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(data, dtype=np.complex64))
    acq.sample_time_us = dwell_us
    acq.center_sample = data.shape[1] // 2
    acq.idx.kspace_encode_step_1 = ky
    acq.idx.slice = slice_
    acq.idx.phase = phase
    acq.idx.repetition = rep
    for f in flags:
        acq.set_flag(f)
    return acq


def noise_readouts(
    rng: np.random.Generator,
    mix: np.ndarray,
    n_readouts: int,
    n_samples: int,
    dwell_us: float = 2.0,
) -> list[ismrmrd.Acquisition]:
    """Correlated noise readouts ``mix @ white`` flagged ACQ_IS_NOISE_MEASUREMENT."""
    coils = mix.shape[0]
    out = []
    for _ in range(n_readouts):
        white = (
            rng.standard_normal((coils, n_samples)) + 1j * rng.standard_normal((coils, n_samples))
        ) / np.sqrt(2)
        out.append(
            acquisition(mix @ white, flags=[ismrmrd.ACQ_IS_NOISE_MEASUREMENT], dwell_us=dwell_us)
        )
    return out


def undersampled_lines(
    kspace: np.ndarray,
    mask: np.ndarray,
    calib: np.ndarray | None = None,
    slice_: int = 0,
    phase: int = 0,
    rep: int = 0,
    order: Iterable[int] | None = None,
) -> list[ismrmrd.Acquisition]:
    """Readouts of the masked lines of ``(coils, ky, kx)`` k-space; the last is LAST_IN_SLICE.

    ``calib`` marks ky lines flagged ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING.
    """
    lines = list(order) if order is not None else [int(k) for k in np.flatnonzero(mask)]
    out = []
    for i, ky in enumerate(lines):
        flags = []
        if calib is not None and calib[ky]:
            flags.append(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
        if i == len(lines) - 1:
            flags.append(ismrmrd.ACQ_LAST_IN_SLICE)
        out.append(acquisition(kspace[:, ky, :], ky, slice_, phase, rep, flags))
    return out


def context(xml: str, backend: str = "numpy") -> ChainContext:
    """A chain context built from the parsed header, as a session builds one."""
    return ChainContext.from_header(
        parse(xml), backend=backend, logger=logging.getLogger("kmtr_stream.test")
    )


def make(cls: type[Gadget], ctx: ChainContext, gadget_id: str = "g", **params: Any) -> Any:
    """Instantiate a gadget with params and the stream's context."""
    return cls(gadget_id, cls.Params(**params), ctx)


def run(gadgets: Sequence[Gadget], messages: Iterable[Any]) -> list[Any]:
    """Feed messages through gadgets in order as the runtime does, flushing at the end.

    The chain's own stage execution, without threads; a gadget's exception propagates.
    """
    return run_gadgets(gadgets, messages, raise_errors=True)
