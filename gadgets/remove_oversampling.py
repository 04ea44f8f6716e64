"""Readout-oversampling removal gadget: crop the readout FOV from encoded to recon size.

Each readout's ``(coils, kx)`` data go through a 1-D centred inverse FFT along
kx, a centre crop and a forward FFT (``kmtr_stream.kspace.oversampling``),
applied as the equivalent exact ``(kx_in, kx_out)`` matrix;
``number_of_samples`` and ``center_sample`` are adjusted. No image is formed.
Readouts that carry no image line (noise, navigators, phase correction, ...; no later
gadget uses them) and readouts already at recon size pass unchanged.

A partial-echo (asymmetric) readout, shorter than the encoded matrix size x, is
zero-filled to it first with its ``center_sample`` at DC (as Gadgetron's
AsymmetricEchoAdjustROGadget does), in the same matrix; it leaves with
``center_sample`` at the centre and without its trajectory (a Cartesian readout
needs none). A full-length readout is taken as centred whatever its ``center_sample``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ismrmrd
import numpy as np

from kmtr_stream.acquisition_fast import copy_head, new_acquisition
from kmtr_stream.backend import array_module, to_numpy
from kmtr_stream.chain.gadget import ChainContext, Gadget
from kmtr_stream.chain.registry import register
from kmtr_stream.errors import GadgetError
from kmtr_stream.kspace.buffer import is_non_imaging
from kmtr_stream.kspace.oversampling import (
    center_sample_after,
    crop_start,
    partial_echo_offset,
    readout_crop_operator,
)


@register("remove_oversampling")
class RemoveOversamplingGadget(Gadget):
    """Crops oversampled readouts to the recon-space matrix size x."""

    @dataclass(frozen=True)
    class Params:
        """``remove_oversampling`` takes no parameters: sizes come from the header."""

    handles = (ismrmrd.Acquisition,)

    def __init__(self, gadget_id: str, params: Any, context: ChainContext) -> None:
        super().__init__(gadget_id, params, context)
        self.xp = array_module(context.backend)
        self.encoded_x = context.geometry.encoded_x
        self.recon_x = context.geometry.recon_x
        self._op: Any = None
        self._key: tuple[int, int] | None = None

    def process(self, message: Any) -> Iterable[Any]:
        acq: ismrmrd.Acquisition = message
        n_in = int(acq.number_of_samples)
        if is_non_imaging(acq) or n_in == self.recon_x:
            yield acq
            return
        offset = 0
        partial = n_in < self.encoded_x  # partial echo: zero-filled to the encoded size
        if partial:
            try:
                offset = partial_echo_offset(n_in, int(acq.center_sample), self.encoded_x)
            except ValueError as exc:
                raise GadgetError(self.id, None, str(exc)) from exc
        elif n_in != self.encoded_x:
            raise GadgetError(
                self.id, None,
                f"readout has {n_in} samples; header says encoded {self.encoded_x}, "
                f"recon {self.recon_x}",
            )
        n_out = self.recon_x
        key = (n_in, offset)
        if self._key != key:
            self._op = readout_crop_operator(n_in, n_out, self.xp, offset, self.encoded_x)
            self._key = key
        data = self.xp.asarray(acq.data) @ self._op
        head = copy_head(acq)
        head.number_of_samples = n_out
        traj = acq.traj
        if partial:
            head.center_sample = n_out // 2
            head.trajectory_dimensions = 0
            traj = np.zeros((n_out, 0), np.float32)
        else:
            head.center_sample = center_sample_after(int(head.center_sample), n_in, n_out)
        if traj.shape[1] > 0:
            start = crop_start(n_in, n_out)
            traj = traj[start : start + n_out]
        yield new_acquisition(
            head,
            np.ascontiguousarray(to_numpy(data), dtype=np.complex64),
            np.array(traj, dtype=np.float32),
        )
