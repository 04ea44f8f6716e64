"""Fit the out-of-distribution statistics of trained weights and store them beside them.

Latents of training subjects (random masks, as in training) give the mean and
whitening (``kmtr_stream.model.ood``); the flagging threshold is a high
percentile of the subject scores of held-out in-distribution validation subjects,
so about ``100 - percentile`` % of in-distribution subjects are flagged.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from kmtr_stream.model.io import LoadedModel
from kmtr_stream.model.ood import fit_latent_stats, slice_scores
from kmtr_stream.training.config import DataConfig, TrainSettings
from kmtr_stream.training.data import CachedCohort, make_batch

#: Percentile of in-distribution validation subject scores used as the threshold.
THRESHOLD_PERCENTILE = 95.0


def cohort_latents(
    loaded: LoadedModel,
    cohort: CachedCohort,
    settings: TrainSettings,
    seed: int,
    batch_size: int = 8,
    fixed_mask: np.ndarray | None = None,
) -> np.ndarray:
    """``(subjects, 2, slices, d)`` latents of ``cohort`` with random (or fixed) masks."""
    from kmtr_stream.training.predict import predict_batch

    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, len(cohort), batch_size):
        idx = np.arange(start, min(start + batch_size, len(cohort)))
        batch = make_batch(
            cohort, idx, rng, settings, loaded.phen_mean, loaded.phen_std, fixed_mask
        )
        pred = predict_batch(loaded.net, batch, loaded.image_input, loaded.device)
        assert pred.latents is not None
        out.append(pred.latents)
    return np.concatenate(out)


def calibrate_ood(
    loaded: LoadedModel, weights_json: Path, n_train: int = 400, progress: bool = True
) -> dict[str, Any]:
    """Fit and write ``meta["ood"]`` of the weights at ``weights_json``; returns it."""
    from kmtr_stream.training.data import build_cohort

    cfg = loaded.meta["training"]["config"]
    data = DataConfig(**cfg["data"])
    known = TrainSettings.__annotations__
    train_cfg = {k: v for k, v in cfg["train"].items() if k in known}
    settings = replace(TrainSettings(**train_cfg), partial_prob=0.0)
    train = build_cohort("train", data.n_train, data, progress).head(n_train)
    val = build_cohort("val", data.n_val, data, progress)
    z = cohort_latents(loaded, train, settings, seed=1)
    stats = fit_latent_stats(z.reshape(-1, z.shape[-1]))
    zv = cohort_latents(loaded, val, settings, seed=2)
    subj = slice_scores(stats, zv).mean(axis=(1, 2))
    threshold = float(np.percentile(subj, THRESHOLD_PERCENTILE))
    stats = replace(stats, threshold=threshold)
    meta = json.loads(weights_json.read_text())
    meta["ood"] = {
        **stats.to_json(),
        "percentile": THRESHOLD_PERCENTILE,
        "fit_subjects": len(train),
        "val_subjects": len(val),
        "val_score_median": float(np.median(subj)),
    }
    weights_json.write_text(json.dumps(meta, indent=1))
    return meta["ood"]
