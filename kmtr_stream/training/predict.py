"""Batched inference over cached cohorts (shared by validation and evaluation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from kmtr_stream.model.io import LoadedModel
from kmtr_stream.model.networks import SliceModel
from kmtr_stream.model.trunk import seg_labels
from kmtr_stream.training.config import TrainSettings
from kmtr_stream.training.data import Batch, CachedCohort, make_batch
from kmtr_stream.training.step import slice_inputs


@dataclass
class Predictions:
    """Outputs of a model on ``b`` subjects.

    Attributes:
        labels: ``(b, 2, slices, ny, nx)`` uint8 predicted label maps.
        phenotypes_std: ``(b, 9)`` standardised phenotype predictions.
        logits: ``(b, classes)`` disease logits (before temperature scaling).
        latents: ``(b, 2, slices, d)`` slice latents (for the out-of-distribution score).
    """

    labels: np.ndarray
    phenotypes_std: np.ndarray
    logits: np.ndarray
    latents: np.ndarray | None = None


@torch.no_grad()
def predict_batch(
    net: SliceModel, batch: Batch, image_input: str, device: torch.device
) -> Predictions:
    """Run ``net`` (eval mode is the caller's business) on one batch."""
    b, p, s = batch.mask.shape[:3]
    bt = batch.to(device)
    k = bt.kspace.reshape(b * p * s, *bt.kspace.shape[-3:])
    m = bt.mask.reshape(b * p * s, -1)
    img = bt.image.reshape(b * p * s, *bt.image.shape[-2:])
    use_amp = device.type == "cuda"
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
        seg, lat = slice_inputs(net, k, m, img, image_input)
        ph, lg = net.subject(lat.reshape(b, p, s, -1), seg)
    labels = seg_labels(seg).reshape(b, p, s, *seg.shape[-2:])
    return Predictions(
        labels=labels.to(torch.uint8).cpu().numpy(),
        phenotypes_std=ph.float().cpu().numpy(),
        logits=lg.float().cpu().numpy(),
        latents=lat.float().reshape(b, p, s, -1).cpu().numpy(),
    )


def predict_cohort(
    loaded: LoadedModel,
    cohort: CachedCohort,
    mask: np.ndarray | None,
    batch_size: int,
    phen_mean: np.ndarray,
    phen_std: np.ndarray,
    progress: bool = False,
    desc: str = "",
    settings: TrainSettings | None = None,
    seed: int = 0,
) -> Predictions:
    """Run ``loaded`` over every subject of ``cohort``.

    ``mask``: the same ``(ky,)`` mask on every slice; None = a random mask per slice
    drawn as ``settings`` (default ``TrainSettings()``) would in training, seeded by ``seed``.
    """
    settings = TrainSettings() if settings is None else settings
    rng = np.random.default_rng(seed)
    parts = []
    n = len(cohort)
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress):
        idx = np.arange(start, min(start + batch_size, n))
        batch = make_batch(cohort, idx, rng, settings, phen_mean, phen_std, fixed_mask=mask)
        parts.append(predict_batch(loaded.net, batch, loaded.image_input, loaded.device))
    return Predictions(
        labels=np.concatenate([p.labels for p in parts]),
        phenotypes_std=np.concatenate([p.phenotypes_std for p in parts]),
        logits=np.concatenate([p.logits for p in parts]),
        latents=np.concatenate([p.latents for p in parts if p.latents is not None]),
    )
