"""Streaming-native k-MTR: the linear part of the network runs as each line arrives.

The k-space frontend is linear up to its ky-mix (``KSpaceFrontend.aggregate``),
and so are every step the chain applies between a readout and the network: coil
compression (across coils), intensity scaling, and resampling onto the model grid
(along kx for every line, and line for line along ky when the fields of view
match). So each line, as it arrives, is compressed to the virtual coils, encoded
with the kx resampling and the kx transforms as one operator (``readout_weights``)
and folded into a running ky-mix (``KyMixAccumulator``). The compression matrix and
the first scale come from the calibration region (the same functions as
``slice_buffer``), as soon as the scan has left it; lines that came before wait in
the raw buffer and are folded in one product then. After the buffer's last line
only small things remain: the grid's scale (as ``model_grid``, on its central lines),
the frontend's non-linear end and the trunk. Slices that are ready
together (at the end of a stream, or from several connected scanners at once)
run through that last part as one batch (``kmtr_stream.model.batching``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kmtr_stream.backend import to_torch
from kmtr_stream.kspace.coil_compression import apply_compression, compression_matrix
from kmtr_stream.kspace.normalisation import calibration_scale, calibration_slice
from kmtr_stream.kspace.resample import AxisMap, apply_axis, model_mask
from kmtr_stream.kspace.xp import get_array_module
from kmtr_stream.model.kspace_encoder import KSpaceFrontend, KyMixAccumulator, readout_weights
from kmtr_stream.model.networks import KMTRModel
from kmtr_stream.model.trunk import seg_labels


@dataclass(frozen=True)
class LinePlan:
    """How one acquired line reaches the model grid (fixed per stream by the header).

    Attributes:
        kx: readout map of the stream (``model_grid``'s plan).
        ky: phase-encode map; an index map (same field of view), else streaming is off.
        model_line: ``(n_ky_acq,)`` model line of each acquired line (-1: outside the grid).
        weights: ``(transforms, n_kx_acq, nx)`` complex: the readout map onto the model
            grid and the frontend's kx transforms in one operator (``readout_weights``).
    """

    kx: AxisMap
    ky: AxisMap
    model_line: np.ndarray
    weights: torch.Tensor


def kx_operator(kx: AxisMap, n_kx_acq: int) -> np.ndarray:
    """``(n_kx_model, n_kx_acq)`` complex64 matrix of a readout map: ``apply_axis`` (what
    ``model_grid`` does to every line) applied to the identity, so the two cannot differ."""
    return np.ascontiguousarray(apply_axis(np.eye(n_kx_acq, dtype=np.complex64), kx, 1).T)


def line_plan(
    kx: AxisMap, ky: AxisMap, n_ky_acq: int, n_kx_acq: int, frontend: KSpaceFrontend
) -> LinePlan | None:
    """The per-line plan, or None when the ky map interpolates (no line-for-line map)."""
    if ky.matrix is not None:
        return None
    model_line = np.full(n_ky_acq, -1, dtype=np.int64)
    ok = ky.index >= 0
    model_line[ky.index[ok]] = np.nonzero(ok)[0]
    device = frontend.wx.device
    op = torch.as_tensor(kx_operator(kx, n_kx_acq), device=device)
    return LinePlan(kx=kx, ky=ky, model_line=model_line, weights=readout_weights(frontend, op))


class SliceAccumulator:
    """One open slice buffer's running ky-mix (virtual coils, model grid).

    Lines are compressed to the virtual coils before they are encoded, so the per-line
    work does not grow with the receiver's coil count. The compression matrix comes
    from the calibration region, so lines that arrive before the scan has left it wait
    in the raw buffer (no work) and are folded in one product when the matrix is known
    (``note_line``). Should the matrix change afterwards (a line back in the region),
    the mix is dropped and rebuilt from the buffer the same way; ``finish_slice`` does
    that too for a slice whose matrix was never known during the scan.

    Args:
        net: the k-MTR network.
        plan: the stream's line plan.
        n_coils: receiver coils of the stream.
        n_virtual: virtual coils (0: the receiver coils are kept, lines fold in at once).
    """

    __slots__ = (
        "_matrix",
        "mix",
        "mix_terms",
        "n_virtual",
        "net",
        "plan",
        "rebuilt",
        "terms",
        "terms_stale",
    )

    def __init__(self, net: KMTRModel, plan: LinePlan, n_coils: int, n_virtual: int) -> None:
        self.net = net
        self.plan = plan
        self.n_virtual = n_virtual
        #: The running mix, or None while the lines wait in the raw buffer.
        self.mix: KyMixAccumulator | None = None
        #: The terms whose matrix compressed the mix's lines (None: no compression).
        self.mix_terms: CalibrationTerms | None = None
        self._matrix: torch.Tensor | None = None
        if n_virtual <= 0:
            self.mix = KyMixAccumulator(net.frontend, n_coils, readout_weights=plan.weights)
        #: Calibration terms computed during the scan; None until then and while stale.
        self.terms: CalibrationTerms | None = None
        #: A line entered the calibration region and the terms are not yet computed again.
        self.terms_stale = False
        #: Times the mix was built from the raw buffer in one product.
        self.rebuilt = 0

    def note_line(self, ky: int, region: slice, raw: Any, acq_mask: np.ndarray,
                  normalise: bool) -> None:
        """Keep the calibration terms and the mix in step with the buffer, after ``raw``
        took line ``ky`` (``acq_mask``: its acquired lines).

        A line inside ``region`` makes the terms stale; the first line outside it after
        that computes them from ``raw`` (once per region visit), so that they are ready before
        the buffer's last line (the region is complete once the scan has left it, as in
        linear and centre-out orderings), and folds the lines waiting in ``raw`` into a mix
        compressed with them. ``finish_slice`` uses both only when they are still current
        for the region it is given.
        """
        if region.start <= ky < region.stop:
            self.terms, self.terms_stale = None, True
            if self.n_virtual > 0 and self.mix is not None:
                self.mix, self.mix_terms = None, None  # the matrix will change
        elif self.terms_stale:
            try:
                self.terms = calibration_terms(raw, region, self.n_virtual, normalise)
            except ValueError:
                self.terms = None  # finish_slice raises the same error where it is reported
            self.terms_stale = False
            if self.terms is not None and self.n_virtual > 0:
                self.rebuild(raw, acq_mask, self.terms)

    def rebuild(self, raw: Any, acq_mask: np.ndarray, terms: CalibrationTerms) -> None:
        """The mix of every acquired line of ``raw`` compressed with ``terms``, in one product."""
        dev = self.plan.weights.device
        self.mix = KyMixAccumulator(self.net.frontend, terms.matrix.shape[0],
                                    readout_weights=self.plan.weights)
        self.mix_terms = terms
        self._matrix = to_torch(terms.matrix).to(dev)
        acq = np.nonzero(np.asarray(acq_mask))[0]
        acq = acq[self.plan.model_line[acq] >= 0]  # outside the model's extent: cropped
        if acq.size:
            xp = get_array_module(raw)
            lines = to_torch(raw[:, xp.asarray(acq), :]).to(dev).permute(1, 0, 2)  # (n, c, kx)
            self.mix.add_lines(torch.matmul(self._matrix, lines),
                               self.plan.model_line[acq].tolist())
        self.rebuilt += 1

    def add_line(self, line: Any, ky: int, sign: float = 1.0) -> None:
        """Fold one ``(coils, kx_acq)`` complex64 line acquired at ``ky`` into the mix
        (nothing while the lines wait in the raw buffer).

        ``sign = -1`` takes a line back out (a repeated ky replaces the earlier line).
        """
        i = int(self.plan.model_line[ky])
        if i < 0 or self.mix is None:
            return  # outside the model's k-space extent: cropped, as model_grid does
        x = to_torch(line).to(self.plan.weights.device, non_blocking=True)
        if self._matrix is not None:
            x = torch.matmul(self._matrix, x)
        self.mix.add_line(x, i, sign)


@dataclass(frozen=True)
class CalibrationTerms:
    """What a buffer's calibration region gives: the compression matrix and first scale.

    Attributes:
        region: the acquired ky range they were computed from.
        matrix: ``(virtual, coils)`` compression matrix (NumPy or CuPy), or None.
        scale: coil 0's RMS over the compressed region (1.0 without normalisation).
    """

    region: slice
    matrix: Any
    scale: float


def calibration_terms(raw: Any, region: slice, n_virtual: int,
                      normalise: bool) -> CalibrationTerms:
    """The compression matrix and first scale of ``(coils, ky, kx)`` ``raw``, as
    ``slice_buffer`` conditions a buffer (SVD of the region, then coil 0's RMS there)."""
    xp = get_array_module(raw)
    calib = raw[:, region, :]
    matrix = compression_matrix(calib, n_virtual, xp) if n_virtual > 0 else None
    scale = 1.0
    if normalise:
        virtual_calib = apply_compression(matrix, calib) if matrix is not None else calib
        scale = calibration_scale(virtual_calib, slice(None))
    return CalibrationTerms(region, matrix, scale)


@dataclass
class SliceInputs:
    """What the network's non-linear part needs of one finished slice.

    Attributes:
        mixed: ``(transforms, virtual coils, ny, nx)`` complex ky-mix, compressed and scaled.
        mask: ``(n_ky_model,)`` bool model-grid mask.
        finalize_ms: milliseconds spent on the compression matrix, scales and product.
        early_terms: the calibration terms were computed during the scan.
    """

    mixed: torch.Tensor
    mask: np.ndarray
    finalize_ms: float
    early_terms: bool = False


def finish_slice(
    acc: SliceAccumulator,
    raw: Any,
    acq_mask: np.ndarray,
    region: slice,
    n_virtual: int,
    normalise: bool,
    fov_y_acq_mm: float,
    fov_model_mm: float,
    center_line: int,
    grid_calibration_lines: int,
) -> SliceInputs:
    """Turn a buffer's running mix into the network's input, as the batch chain conditions it.

    The batch chain compresses the buffer with its calibration region's SVD and divides
    by coil 0's RMS there (``slice_buffer``), resamples it onto the model grid and
    divides by coil 0's RMS over the grid's central lines (``model_grid``). The same
    functions run here on the calibration lines and coil 0 only; the mix takes the
    product. The first two come from ``acc.terms`` when the scan computed them after
    its last line in ``region`` (``SliceAccumulator.note_line``).

    Args:
        acc: the buffer's accumulator.
        raw: ``(coils, ky, kx)`` complex64 raw buffer (NumPy or CuPy; prewhitened).
        acq_mask: ``(ky,)`` bool acquired lines.
        region: the buffer's calibration region (``triggers.calibration_region``).
        n_virtual: virtual coils (0: none).
        normalise: apply the training data's intensity normalisation.
        fov_y_acq_mm: acquired phase-encode field of view.
        fov_model_mm: the model's field of view.
        center_line: acquired ky line of DC.
        grid_calibration_lines: central model lines of the grid's normalisation.
    """
    t0 = time.perf_counter_ns()
    terms = acc.terms  # None while stale (note_line)
    early = terms is not None and terms.region == region
    if terms is None or not early:
        terms = calibration_terms(raw, region, n_virtual, normalise)
    if n_virtual > 0 and (acc.mix is None or acc.mix_terms is not terms):
        acc.rebuild(raw, acq_mask, terms)  # the matrix was not known (or changed) in the scan
    assert acc.mix is not None
    matrix, s1 = terms.matrix, terms.scale
    plan = acc.plan
    # The grid's scale (model_grid's normalisation) needs virtual coil 0 on the grid's
    # central lines only: those rows of the buffer, resampled along kx.
    xp = get_array_module(raw)
    m_model = model_mask(plan.ky, acq_mask, fov_y_acq_mm, fov_model_mm, center_line)
    central = calibration_slice(int(m_model.shape[0]), grid_calibration_lines)
    lines = np.arange(central.start, central.stop)
    lines = lines[m_model[lines]]
    rows = xp.asarray(plan.ky.index[lines])
    coil0 = raw[:1, rows, :] if matrix is None else apply_compression(matrix[:1], raw[:, rows, :])
    grid0 = xp.zeros((1, central.stop - central.start, plan.kx.index.shape[0]), dtype=xp.complex64)
    grid0[:, lines - central.start, :] = apply_axis(coil0 / np.float32(s1), plan.kx, 2)
    s2 = calibration_scale(grid0, slice(None))
    mixed = acc.mix.compressed(None, s1 * s2)
    return SliceInputs(mixed, m_model, (time.perf_counter_ns() - t0) / 1e6, early)


@torch.inference_mode()
def run_network(
    net: KMTRModel, batch: list[SliceInputs]
) -> list[tuple[np.ndarray, np.ndarray, float, int]]:
    """The non-linear rest for slices that are ready together, as one batch.

    Returns:
        Per slice: ``(ny, nx)`` int16 labels, ``(latent_dim,)`` float32 latent, the
        batch's network milliseconds and its size (slices in that forward pass).
    """
    t0 = time.perf_counter_ns()
    dev = batch[0].mixed.device
    mixed = torch.stack([b.mixed for b in batch])  # (n, h, v, y, x)
    mask = torch.as_tensor(np.stack([b.mask for b in batch]), device=dev)
    feat = net.frontend.features_from_mixed(mixed.real.contiguous(), mixed.imag.contiguous(), mask)
    seg, lat = net.trunk(feat)
    labels = seg_labels(seg).to(torch.int16).cpu().numpy()
    latents = lat.float().cpu().numpy()
    ms = (time.perf_counter_ns() - t0) / 1e6
    return [(labels[i], latents[i], ms, len(batch)) for i in range(len(batch))]
