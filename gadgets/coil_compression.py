"""Coil compression gadget: SVD/PCA to a fixed number of virtual coils.

The compression matrix is estimated from calibration readouts (flagged
ACQ_IS_PARALLEL_CALIBRATION[_AND_IMAGING]) or from the first imaging lines.
Until it is known every readout is held, in order; once it is, the held ones
are released compressed, then each later readout passes compressed: nothing
is lost. Receivers with fewer coils than ``n_virtual_coils`` get zero-filled
virtual coils so one network serves any coil count. The kept energy fraction
is logged and stored in ``kept_energy_fraction`` and in
``context.extras["<gadget id>.kept_energy_fraction"]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ismrmrd
import numpy as np

from kmtr_stream.acquisition_fast import copy_head, new_acquisition
from kmtr_stream.backend import array_module, to_numpy
from kmtr_stream.chain.gadget import ChainContext, Gadget, param
from kmtr_stream.chain.registry import register
from kmtr_stream.errors import GadgetError
from kmtr_stream.kspace.buffer import is_calibration
from kmtr_stream.kspace.coil_compression import (
    apply_compression,
    compression_matrix,
    energy_fraction,
)


@register("coil_compression")
class CoilCompressionGadget(Gadget):
    """Compresses receiver channels to ``n_virtual_coils`` virtual coils."""

    @dataclass(frozen=True)
    class Params:
        """Parameters of ``coil_compression``."""

        n_virtual_coils: int = param(8, min=1, max=128, doc="virtual coils out")
        source: str = param(
            "calibration", choices=("calibration", "first_lines"),
            doc="lines the matrix is estimated from: calibration-flagged lines or the first lines",
        )
        calibration_lines: int = param(
            16, min=1, max=4096, doc="lines (readouts) used to estimate the matrix",
        )
        max_held_lines: int = param(
            256, min=1, max=1 << 20,
            doc="readouts held at most while waiting for calibration lines; then the held "
            "lines estimate the matrix",
        )

    handles = (ismrmrd.Acquisition,)

    def __init__(self, gadget_id: str, params: Any, context: ChainContext) -> None:
        super().__init__(gadget_id, params, context)
        self.xp = array_module(context.backend)
        self.held: list[ismrmrd.Acquisition] = []
        self.calib: list[Any] = []
        #: ``(n_virtual_coils, coils)`` matrix on the backend once known.
        self.matrix: Any = None
        self.kept_energy_fraction: float | None = None
        self.n_coils_in = 0

    def _uses(self, acq: ismrmrd.Acquisition) -> bool:
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            return False
        return self.params.source == "first_lines" or is_calibration(acq)

    def _estimate(self, samples: list[Any]) -> None:
        xp = self.xp
        calib = xp.concatenate(samples, axis=1)
        n_coils = int(calib.shape[0])
        n_keep = min(self.params.n_virtual_coils, n_coils)
        self.matrix = compression_matrix(calib, n_keep, xp)
        self.kept_energy_fraction = energy_fraction(calib, n_keep, xp)
        self.n_coils_in = n_coils
        self.context.extras[f"{self.id}.kept_energy_fraction"] = self.kept_energy_fraction
        msg = "%s: %d coils -> %d virtual coils from %d samples, kept energy fraction %.5f"
        self.context.logger.info(
            msg, self.id, n_coils, self.params.n_virtual_coils, calib.shape[1],
            self.kept_energy_fraction,
        )
        if n_coils < self.params.n_virtual_coils:
            self.context.logger.warning(
                "%s: only %d receiver coils; virtual coils %d..%d are zero",
                self.id, n_coils, n_coils, self.params.n_virtual_coils - 1,
            )

    def _compress(self, acq: ismrmrd.Acquisition) -> ismrmrd.Acquisition:
        xp = self.xp
        if int(acq.active_channels) != self.n_coils_in:
            raise GadgetError(
                self.id, None,
                f"readout has {acq.active_channels} coils, compression matrix expects "
                f"{self.n_coils_in}",
            )
        nv = self.params.n_virtual_coils
        virt = to_numpy(apply_compression(self.matrix, xp.asarray(acq.data)))
        if virt.shape[0] < nv:
            virt = np.concatenate(
                [virt, np.zeros((nv - virt.shape[0], virt.shape[1]), virt.dtype)], axis=0
            )
        head = copy_head(acq)
        head.active_channels = nv
        head.available_channels = nv
        for i in range(len(head.channel_mask)):
            bits = max(0, min(64, nv - 64 * i))
            head.channel_mask[i] = (1 << bits) - 1 if bits < 64 else (1 << 64) - 1
        return new_acquisition(
            head, np.ascontiguousarray(virt, dtype=np.complex64),
            np.array(acq.traj, dtype=np.float32),
        )

    def _release(self) -> list[ismrmrd.Acquisition]:
        out = [self._compress(a) for a in self.held]
        self.held.clear()
        self.calib.clear()
        return out

    def process(self, message: Any) -> Iterable[Any]:
        acq: ismrmrd.Acquisition = message
        if self.matrix is not None:
            yield self._compress(acq)
            return
        self.held.append(acq)
        if self._uses(acq):
            self.calib.append(self.xp.asarray(acq.data))
        if len(self.calib) >= self.params.calibration_lines:
            self._estimate(self.calib)
        elif len(self.held) >= self.params.max_held_lines:
            self.context.logger.warning(
                "%s: %d readouts held with %d calibration lines; estimating from the held lines",
                self.id, len(self.held), len(self.calib),
            )
            self._estimate_from_held()
        if self.matrix is not None:
            yield from self._release()

    def _estimate_from_held(self) -> None:
        imaging = [
            self.xp.asarray(a.data) for a in self.held
            if not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        ]
        self._estimate(imaging or [self.xp.asarray(a.data) for a in self.held])

    def describe_state(self) -> str | None:
        """Readouts held until the compression matrix is known."""
        if not self.held:
            return None
        return f"{len(self.held)} readouts held for the compression matrix"

    def flush(self) -> Iterable[Any]:
        if not self.held:
            return []
        if self.calib:
            self._estimate(self.calib)
        else:
            self._estimate_from_held()
        return self._release()
