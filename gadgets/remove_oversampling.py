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
The ADC's ``discard_pre`` leading and ``discard_post`` trailing samples are dropped
first, in the same matrix; readouts leave with both set to 0.
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
    kept_samples,
    partial_echo_offset,
    readout_crop_operator,
    readout_size_text,
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
        self._key: tuple[int, ...] | None = None

    def process(self, message: Any) -> Iterable[Any]:
        acq: ismrmrd.Acquisition = message
        n_in = int(acq.number_of_samples)
        discard = (int(acq.discard_pre), int(acq.discard_post))
        if is_non_imaging(acq) or (n_in == self.recon_x and discard == (0, 0)):
            yield acq
            return
        try:
            n_kept, center = kept_samples(n_in, int(acq.center_sample), *discard)
            offset, n_full = 0, self.encoded_x
            partial = self.recon_x != n_kept < self.encoded_x  # zero-filled to encoded size
            if partial:
                offset = partial_echo_offset(n_kept, center, self.encoded_x)
            elif n_kept == self.recon_x:
                n_full = n_kept  # already at recon size: only the discarded samples go
            elif n_kept != self.encoded_x:
                raise ValueError(f"{readout_size_text(n_in, *discard)}; header says encoded "
                                 f"{self.encoded_x}, recon {self.recon_x}")
        except ValueError as exc:
            raise GadgetError(self.id, None, str(exc)) from exc
        n_out = self.recon_x
        key = (n_in, offset, n_full, *discard)
        if self._key != key:
            self._op = readout_crop_operator(n_in, n_out, self.xp, offset, n_full, discard)
            self._key = key
        data = self.xp.asarray(acq.data) @ self._op
        head = copy_head(acq)
        head.number_of_samples = n_out
        head.discard_pre = head.discard_post = 0
        traj = acq.traj
        if partial:
            head.center_sample = n_out // 2
            head.trajectory_dimensions = 0
            traj = np.zeros((n_out, 0), np.float32)
        else:
            head.center_sample = center_sample_after(max(center, 0), n_kept, n_out)
        if traj.shape[1] > 0:
            start = discard[0] + crop_start(n_kept, n_out)
            traj = traj[start : start + n_out]
        yield new_acquisition(
            head,
            np.ascontiguousarray(to_numpy(data), dtype=np.complex64),
            np.array(traj, dtype=np.float32),
        )
