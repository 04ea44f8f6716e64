"""Fit the out-of-distribution statistics of trained weights and store them beside them.

Latents of training subjects (random masks, as in training) give the mean and
whitening (``kmtr_stream.model.ood``); held-out in-distribution validation subjects
give the medians that put the latent score, the phenotype disagreement and the
cavity exposure on one scale, and the flagging threshold, a high percentile of
their subject scores, so about ``100 - percentile`` % of in-distribution subjects
are flagged.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from kmtr_stream.cardiac import phenotypes_from_labels
from kmtr_stream.conventions import PHENOTYPES
from kmtr_stream.model.io import LoadedModel
from kmtr_stream.model.ood import (
    LatentStats,
    combined_score,
    fit_latent_stats,
    phenotype_disagreement,
    slice_scores,
    subject_exposure,
)
from kmtr_stream.training.config import DataConfig, TrainSettings
from kmtr_stream.training.predict import Predictions, predict_cohort

#: Percentile of in-distribution validation subject scores used as the threshold.
THRESHOLD_PERCENTILE = 95.0


def seg_phenotypes(pred: Predictions, voxel_size_mm: np.ndarray) -> np.ndarray:
    """``(subjects, 9)`` phenotypes measured on the predicted label maps (ED 0, ES 1)."""
    return np.asarray([
        [phenotypes_from_labels(lab, (float(x), float(y), float(z)), 0, 1)[k] for k in PHENOTYPES]
        for lab, (x, y, z) in zip(pred.labels, voxel_size_mm, strict=True)
    ])


def subject_components(
    stats: LatentStats, loaded: LoadedModel, pred: Predictions, voxel_size_mm: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(subjects,)`` latent score, regressed and segmentation phenotypes ``(subjects, 9)``."""
    if pred.latents is None:
        raise ValueError("predictions without latents have no out-of-distribution score")
    latent = slice_scores(stats, pred.latents).mean(axis=(1, 2))
    net = pred.phenotypes_std * loaded.phen_std + loaded.phen_mean
    return latent, net, seg_phenotypes(pred, voxel_size_mm)


def subject_ood_scores(
    stats: LatentStats, loaded: LoadedModel, pred: Predictions, voxel_size_mm: np.ndarray
) -> np.ndarray:
    """``(subjects,)`` subject scores exactly as the chain computes them (``combined_score``)."""
    return combined_score(stats, *subject_components(stats, loaded, pred, voxel_size_mm),
                          pred.labels)


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
    mean, std = loaded.phen_mean, loaded.phen_std
    z = predict_cohort(loaded, train, None, 8, mean, std, settings=settings, seed=1).latents
    assert z is not None
    stats = fit_latent_stats(z.reshape(-1, z.shape[-1]))
    pv = predict_cohort(loaded, val, None, 8, mean, std, settings=settings, seed=2)
    latent, net, seg = subject_components(stats, loaded, pv, val.voxel_size_mm)
    stats = replace(
        stats,
        phen_scale=np.asarray(std, np.float64),
        latent_ref=float(np.median(latent)),
        agree_ref=float(np.median(phenotype_disagreement(net, seg, np.asarray(std)))),
        shape_ref=float(np.median(subject_exposure(pv.labels))),
    )
    subj = combined_score(stats, latent, net, seg, pv.labels)
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
