"""Out-of-distribution score: distance of slice latents to the training distribution.

The shared latent is what every task head reads, so an input unlike the training
data shows up there first. Each slice latent ``z`` (``(d,)``) is scored by its
Mahalanobis distance to the latents of the training cohort, per dimension:
``||W (z - mean)|| / sqrt(d)`` with ``W`` the whitening of the (shrunk) training
covariance. A subject's latent score is the mean over its ED and ES slices.

A second, independent signal is the subject's own consistency: the phenotypes the
network regresses and those measured on its segmentation agree on familiar input
and part ways when the segmentation breaks (``phenotype_disagreement``: RMS of
their difference in units of the training cohort's spread). A third is the
anatomy of the returned label maps: in a short-axis slice the myocardium encloses
the LV cavity, so a cavity that touches background or the RV cavity directly is a
segmentation that has lost the heart (``cavity_exposure``). The subject score is
the mean of the calibrated signals, each divided by its in-distribution median, so
any one can raise it. The threshold shipped with the weights is fitted on held-out
in-distribution subjects (``kmtr_stream.training.ood_calibration``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Share of the mean variance added to the covariance diagonal (stable whitening).
SHRINKAGE = 0.05


@dataclass(frozen=True)
class LatentStats:
    """Training-latent statistics and the flagging threshold.

    Attributes:
        mean: ``(d,)`` mean training latent.
        whiten: ``(d, d)`` matrix ``W`` with ``W cov W^T = I``.
        threshold: subject score above which a result is flagged out of distribution.
        phen_scale: ``(9,)`` spread of each phenotype in the training cohort (physical
            units); None = latent score only (calibrations without it).
        latent_ref: in-distribution median of the latent score.
        agree_ref: in-distribution median of the phenotype disagreement.
        shape_ref: in-distribution median of the cavity exposure; None = not part of
            the score (calibrations without it).
    """

    mean: np.ndarray
    whiten: np.ndarray
    threshold: float
    phen_scale: np.ndarray | None = None
    latent_ref: float = 1.0
    agree_ref: float = 1.0
    shape_ref: float | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form stored in the weights' metadata under "ood"."""
        out: dict[str, Any] = {
            "mean": self.mean.tolist(),
            "whiten": self.whiten.tolist(),
            "threshold": float(self.threshold),
        }
        if self.phen_scale is not None:
            out["phen_scale"] = self.phen_scale.tolist()
            out["latent_ref"] = float(self.latent_ref)
            out["agree_ref"] = float(self.agree_ref)
        if self.shape_ref is not None:
            out["shape_ref"] = float(self.shape_ref)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatentStats:
        """Inverse of ``to_json``."""
        scale = data.get("phen_scale")
        shape = data.get("shape_ref")
        return cls(
            mean=np.asarray(data["mean"], dtype=np.float64),
            whiten=np.asarray(data["whiten"], dtype=np.float64),
            threshold=float(data["threshold"]),
            phen_scale=None if scale is None else np.asarray(scale, dtype=np.float64),
            latent_ref=float(data.get("latent_ref", 1.0)),
            agree_ref=float(data.get("agree_ref", 1.0)),
            shape_ref=None if shape is None else float(shape),
        )


def fit_latent_stats(latents: np.ndarray, threshold: float = float("inf")) -> LatentStats:
    """Mean and whitening of ``(n, d)`` training latents (covariance shrunk towards its trace)."""
    z = np.asarray(latents, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"need (n >= 2, d) latents, got shape {z.shape}")
    mean = z.mean(axis=0)
    cov = np.cov(z, rowvar=False)
    cov += SHRINKAGE * float(np.trace(cov)) / cov.shape[0] * np.eye(cov.shape[0])
    vals, vecs = np.linalg.eigh(cov)
    whiten = (vecs / np.sqrt(vals)).T
    return LatentStats(mean=mean, whiten=whiten, threshold=threshold)


def slice_scores(stats: LatentStats, latents: np.ndarray) -> np.ndarray:
    """Scores of ``(..., d)`` latents -> ``(...)`` (about 1 in distribution)."""
    z = np.asarray(latents, dtype=np.float64) - stats.mean
    w = z @ stats.whiten.T
    return np.asarray(np.sqrt((w * w).mean(axis=-1)))


def subject_score(stats: LatentStats, latents: np.ndarray) -> float:
    """Score of one subject from its ``(phases, slices, d)`` (or ``(n, d)``) slice latents."""
    return float(slice_scores(stats, latents).mean())


def phenotype_disagreement(
    phen_net: np.ndarray, phen_seg: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """RMS over phenotypes of ``(net - seg) / scale``: ``(..., 9)`` -> ``(...)``."""
    d = (np.asarray(phen_net, np.float64) - np.asarray(phen_seg, np.float64)) / scale
    d = np.nan_to_num(d, nan=10.0, posinf=10.0, neginf=10.0)  # a NaN phenotype is a failure
    return np.asarray(np.sqrt((d * d).mean(axis=-1)))


#: Smallest in-distribution median the cavity exposure is divided by (a model whose
#: in-distribution cavities never touch anything must not turn one pixel into a flag).
SHAPE_REF_FLOOR = 0.01
#: Cavity exposure of a subject without any LV cavity: every slice lost the heart.
NO_CAVITY = 1.0


def cavity_exposure(labels: np.ndarray) -> np.ndarray:
    """Share of LV-cavity pixels with a 4-neighbour that is background or RV cavity.

    ``(..., slices, ny, nx)`` ACDC label maps -> ``(...)``: the mean over the slices
    that have an LV cavity (``NO_CAVITY`` when none has). Near 0 when the myocardium
    encloses the cavity, as it does in short-axis anatomy.
    """
    lab = np.asarray(labels)
    lv = lab == 3
    exposed = np.zeros_like(lv)
    for axis, step in ((-1, 1), (-1, -1), (-2, 1), (-2, -1)):
        nb = np.roll(lab, step, axis=axis)
        exposed |= (nb == 0) | (nb == 1)
    n_lv = lv.sum(axis=(-2, -1))
    frac = (lv & exposed).sum(axis=(-2, -1)) / np.maximum(n_lv, 1)
    has = n_lv > 0
    n_has = has.sum(axis=-1)
    mean = np.where(has, frac, 0.0).sum(axis=-1) / np.maximum(n_has, 1)
    return np.asarray(np.where(n_has > 0, mean, NO_CAVITY), np.float64)


def subject_exposure(labels: np.ndarray) -> np.ndarray:
    """``(..., phases, slices, ny, nx)`` label maps -> ``(...)``: the cavity exposure
    averaged over the phases (ED and ES)."""
    lab = np.asarray(labels)
    if lab.ndim < 4:
        raise ValueError(f"need (..., phases, slices, ny, nx) label maps, got shape {lab.shape}")
    return np.asarray(cavity_exposure(lab).mean(axis=-1))


def combined_score(
    stats: LatentStats,
    latent_score: np.ndarray | float,
    phen_net: np.ndarray | None,
    phen_seg: np.ndarray | None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Subject score: the mean of its latent score and, where calibrated and given, its
    phenotype disagreement and its cavity exposure (of ``(..., phases, slices, ny, nx)``
    label maps), each over its in-distribution median."""
    parts = [np.asarray(latent_score, np.float64) / stats.latent_ref]
    if stats.phen_scale is not None and phen_net is not None and phen_seg is not None:
        agree = phenotype_disagreement(phen_net, phen_seg, stats.phen_scale)
        parts.append(agree / stats.agree_ref)
    if stats.shape_ref is not None and labels is not None:
        parts.append(subject_exposure(labels) / max(stats.shape_ref, SHAPE_REF_FLOOR))
    if len(parts) == 1:
        return np.asarray(latent_score, np.float64)  # uncalibrated: the raw latent score
    return np.asarray(np.mean(np.stack(np.broadcast_arrays(*parts)), axis=0))
