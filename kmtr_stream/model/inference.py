"""Per-slice inference used by the chain's inference gadgets (k-MTR and recon baseline)."""

from __future__ import annotations

import time
from typing import Any

import ismrmrd
import numpy as np
import torch

from kmtr_stream.backend import to_torch
from kmtr_stream.errors import KmtrError
from kmtr_stream.messages import SliceKSpace, SliceResult
from kmtr_stream.model.io import LoadedModel
from kmtr_stream.model.networks import KMTRModel
from kmtr_stream.model.recon import zero_filled_rss


def _check_shape(loaded: LoadedModel, kspace: torch.Tensor) -> None:
    cfg = loaded.net.cfg
    want = (cfg.n_coils, cfg.n_ky, cfg.n_kx)
    if tuple(kspace.shape) != want:
        raise KmtrError(
            f"slice k-space has shape (coils, ky, kx) = {tuple(kspace.shape)}, the model expects "
            f"{want} (check coil_compression n_virtual_coils and the recon matrix)"
        )


@torch.no_grad()
def infer_slice(loaded: LoadedModel, msg: SliceKSpace) -> tuple[np.ndarray, np.ndarray, float]:
    """Segment one buffered slice.

    The k-space crosses to torch through DLPack (``backend.to_torch``), so a
    CuPy buffer reaches a CUDA model without a host copy.

    Args:
        loaded: a k-MTR model, or an image model (zero-filled RSS input).
        msg: the buffered slice; ``kspace`` ``(coils, ky, kx)`` complex64, ``mask`` ``(ky,)``.

    Returns:
        ``(ny, nx)`` int16 labels, ``(latent_dim,)`` float32 latent, network milliseconds.
    """
    dev = loaded.device
    kspace = to_torch(msg.kspace).to(dev, non_blocking=True)
    mask = to_torch(msg.mask).to(dev, non_blocking=True).bool()
    _check_shape(loaded, kspace)
    t0 = time.perf_counter_ns()
    net = loaded.net
    if isinstance(net, KMTRModel):
        seg, lat = net(kspace[None], mask[None])
    else:
        seg, lat = net(zero_filled_rss(kspace[None], mask[None]))
    labels = seg.argmax(dim=1)[0].to(torch.int16).cpu().numpy()
    latent = lat[0].float().cpu().numpy()
    return labels, latent, (time.perf_counter_ns() - t0) / 1e6


def labels_image(
    msg: SliceKSpace, labels: np.ndarray, image_index: int, series: int
) -> ismrmrd.Image:
    """MRD image of int16 labels carrying the slice's counters and geometry.

    Args:
        msg: the slice the labels belong to (counters, voxel size).
        labels: ``(ny, nx)`` int16 label map.
        image_index: running image index of the series.
        series: image series index.
    """
    img = ismrmrd.Image.from_array(np.ascontiguousarray(labels.astype(np.int16)))
    img.image_type = ismrmrd.IMTYPE_MAGNITUDE
    img.slice = int(msg.slice)
    img.phase = int(msg.phase)
    img.repetition = int(msg.repetition)
    img.image_index = int(image_index)
    img.image_series_index = int(series)
    ny, nx = labels.shape
    dx, dy, dz = msg.voxel_size_mm
    img.field_of_view[:] = (float(nx * dx), float(ny * dy), float(dz))
    return img


def slice_result(
    msg: SliceKSpace,
    labels: np.ndarray,
    latent: np.ndarray,
    timings_ms: dict[str, float],
) -> SliceResult:
    """SliceResult of ``msg``; adds "post_last_line" (ms since the last line arrived) when known."""
    timings = dict(timings_ms)
    if msg.t_last_line_ns:
        timings["post_last_line"] = (time.perf_counter_ns() - msg.t_last_line_ns) / 1e6
    return SliceResult(
        slice=int(msg.slice),
        phase=int(msg.phase),
        repetition=int(msg.repetition),
        n_slices=int(msg.n_slices),
        n_phases=int(msg.n_phases),
        labels=labels,
        latent=latent,
        lines_used=int(msg.lines_used),
        final=bool(msg.final),
        last_in_measurement=bool(msg.last_in_measurement),
        voxel_size_mm=tuple(float(v) for v in msg.voxel_size_mm),  # type: ignore[arg-type]
        timings_ms=timings,
    )


def run_inference(
    loaded: LoadedModel, msg: SliceKSpace, image_index: int, series: int
) -> list[Any]:
    """Labels image plus SliceResult for one buffered slice (what the gadgets yield)."""
    t0 = time.perf_counter_ns()
    labels, latent, net_ms = infer_slice(loaded, msg)
    image = labels_image(msg, labels, image_index, series)
    timings = {"network": net_ms, "gadget": (time.perf_counter_ns() - t0) / 1e6}
    return [image, slice_result(msg, labels, latent, timings)]
