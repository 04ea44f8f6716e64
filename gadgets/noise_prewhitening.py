"""Noise prewhitening gadget (Gadgetron NoiseAdjustGadget equivalent).

Readouts flagged ACQ_IS_NOISE_MEASUREMENT are consumed: they accumulate the
receiver noise covariance. At the first imaging readout the prewhitener
``W = s * inv(chol(C))`` is fixed (math and the bandwidth scale ``s`` in
``kmtr_stream.kspace.prewhitening``) and applied to that and every later
readout. Without a preceding noise scan the data pass unchanged (identity)
and a WARNING is logged once.

A noise scan that gives no prewhitener (NaN or infinite samples, a covariance
that is not positive definite, a coil count other than the imaging readouts')
is a failed noise calibration: one ERROR (code ``invalid_data``) says so, the
stream is analysed without prewhitening, and a ``DataFault``
``noise_calibration_failed`` for the whole stream goes downstream first, so
every slice result from then on carries that flag (``kmtr_stream.validation``).
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
from kmtr_stream.kspace.prewhitening import (
    DEFAULT_RECEIVER_NOISE_BANDWIDTH,
    apply_prewhitening,
    bandwidth_scale,
    covariance_sum,
    noise_covariance,
    prewhitening_matrix,
)
from kmtr_stream.messages import DataFault
from kmtr_stream.validation import NOISE


@register("noise_prewhitening")
class NoisePrewhiteningGadget(Gadget):
    """Whitens coil noise using the stream's noise-scan readouts."""

    @dataclass(frozen=True)
    class Params:
        """Parameters of ``noise_prewhitening``."""

        noise_bandwidth_factor: float = param(
            DEFAULT_RECEIVER_NOISE_BANDWIDTH, min=0.01, max=10.0,
            doc="relative receiver noise bandwidth used when the header has none "
            "(Gadgetron default 0.793)",
        )
        complex_variance: float = param(
            1.0, min=0.01, max=10.0,
            doc="target variance of whitened complex noise (2.0 reproduces Gadgetron's scale)",
        )
        noise_dwell_time_us: float = param(
            0.0, min=0.0, max=1e6,
            doc="dwell time of the noise scan in us; 0 = from the noise readouts' sample_time_us",
        )

    handles = (ismrmrd.Acquisition,)

    def __init__(self, gadget_id: str, params: Any, context: ChainContext) -> None:
        super().__init__(gadget_id, params, context)
        self.xp = array_module(context.backend)
        self.cov_sum: Any = None
        self.n_noise_samples = 0
        self.noise_dwell_us = float(params.noise_dwell_time_us)
        header_rnbw = context.geometry.receiver_noise_bandwidth
        #: The header's relative receiver noise bandwidth; the parameter only where it has none.
        self.receiver_noise_bandwidth = (
            float(params.noise_bandwidth_factor) if header_rnbw is None else header_rnbw
        )
        #: ``(coils, coils)`` prewhitener on the backend once fixed; None = identity.
        self.prewhitener: Any = None
        self.scale = 1.0
        self._fixed = False
        self._late_noise = 0
        self._noise_error = ""
        #: Why the noise calibration failed ("" when it did not).
        self.calibration_error = ""

    @property
    def noise_covariance(self) -> Any:
        """``(coils, coils)`` noise covariance from the noise scans, or None."""
        if self.cov_sum is None or self.n_noise_samples < 2:
            return None
        return noise_covariance(self.cov_sum, self.n_noise_samples)

    def describe_state(self) -> str | None:
        """Noise samples accumulated while the prewhitener is not fixed yet."""
        if self._fixed or self.cov_sum is None:
            return None
        coils = int(self.cov_sum.shape[0])
        return f"{self.n_noise_samples} noise samples of {coils} coils, prewhitener not fixed"

    def _fix(self, acq: ismrmrd.Acquisition) -> list[Any]:
        """Fix the prewhitener at the first imaging readout; what a failure sends first."""
        self._fixed = True
        if self._noise_error:
            return self._failed(self._noise_error)
        cov = self.noise_covariance
        if cov is None:
            self.context.logger.warning(
                "%s: no noise scan before the first imaging readout; prewhitening is the identity",
                self.id,
            )
            return []
        if cov.shape[0] != acq.active_channels:
            return self._failed(f"noise scan has {cov.shape[0]} coils but imaging readouts "
                                f"have {acq.active_channels}")
        self.scale = bandwidth_scale(
            self.noise_dwell_us, float(acq.sample_time_us), self.receiver_noise_bandwidth,
            self.params.complex_variance,
        )
        try:
            self.prewhitener = prewhitening_matrix(cov, self.scale)
        except ValueError as exc:
            return self._failed(str(exc))
        self.context.logger.info(
            "%s: prewhitener from %d noise samples of %d coils, bandwidth scale %.4f",
            self.id, self.n_noise_samples, cov.shape[0], self.scale,
        )
        return []

    def _failed(self, why: str) -> list[Any]:
        """A failed noise calibration: one ERROR, and a flag on every later result."""
        self.calibration_error = why
        times = self.context.current_message_times()
        index = times.message_index if times is not None else None
        text = (f"noise calibration failed: {why}; the stream is analysed without "
                f"prewhitening and every result is flagged {NOISE!r}")
        return [
            self.data_error(text, {"cause": NOISE}, index),
            DataFault(cause=NOISE, detail=why, key=None, message_index=index),
        ]

    def process(self, message: Any) -> Iterable[Any]:
        acq: ismrmrd.Acquisition = message
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            if self._fixed:
                self._late_noise += 1
                if self._late_noise == 1:
                    self.context.logger.warning(
                        "%s: noise readout after imaging started is ignored", self.id
                    )
                return
            data = self.xp.asarray(acq.data)
            if self._noise_error:
                return
            if not bool(self.xp.isfinite(data).all()):
                self._noise_error = "the noise scan has NaN or infinite samples"
                return
            part = covariance_sum(data)
            if self.cov_sum is not None and self.cov_sum.shape != part.shape:
                self._noise_error = "noise readouts change their coil count"
                return
            self.cov_sum = part if self.cov_sum is None else self.cov_sum + part
            self.n_noise_samples += int(acq.number_of_samples)
            if self.params.noise_dwell_time_us == 0.0:
                self.noise_dwell_us = float(acq.sample_time_us)
            return
        if not self._fixed:
            yield from self._fix(acq)
        if self.prewhitener is not None:
            white = apply_prewhitening(self.prewhitener, self.xp.asarray(acq.data))
            # A new message, never an in-place edit: upstream taps may hold the original.
            acq = new_acquisition(
                copy_head(acq),
                np.ascontiguousarray(to_numpy(white), dtype=np.complex64),
                np.array(acq.traj, dtype=np.float32),
            )
        yield acq
