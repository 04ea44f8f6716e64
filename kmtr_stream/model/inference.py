"""Per-slice inference used by the chain's inference gadgets (k-MTR and recon baseline).

Pure torch: what the gadgets make of the outputs (MRD label images, slice
results) lives in ``kmtr_stream/label_images.py``, used by the inference gadgets.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from kmtr_stream.backend import to_torch
from kmtr_stream.errors import KmtrError
from kmtr_stream.messages import SliceKSpace
from kmtr_stream.model.io import LoadedModel
from kmtr_stream.model.networks import KMTRModel
from kmtr_stream.model.recon import zero_filled_rss
from kmtr_stream.model.trunk import seg_labels


def _check_shape(loaded: LoadedModel, kspace: torch.Tensor) -> None:
    cfg = loaded.net.cfg
    want = (cfg.n_coils, cfg.n_ky, cfg.n_kx)
    if tuple(kspace.shape) != want:
        raise KmtrError(
            f"slice k-space has shape (coils, ky, kx) = {tuple(kspace.shape)}, the model expects "
            f"{want} (check coil_compression n_virtual_coils and the recon matrix)"
        )


@torch.inference_mode()
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
    labels = seg_labels(seg)[0].to(torch.int16).cpu().numpy()
    latent = lat[0].float().cpu().numpy()
    return labels, latent, (time.perf_counter_ns() - t0) / 1e6
