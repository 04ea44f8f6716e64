"""Out-of-distribution score: distance of slice latents to the training distribution.

The shared latent is what every task head reads, so an input unlike the training
data shows up there first. Each slice latent ``z`` (``(d,)``) is scored by its
Mahalanobis distance to the latents of the training cohort, per dimension:
``||W (z - mean)|| / sqrt(d)`` with ``W`` the whitening of the (shrunk) training
covariance. A subject's score is the mean over its ED and ES slices. In-distribution
slices score about 1; the threshold shipped with the weights is fitted on held-out
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
    """

    mean: np.ndarray
    whiten: np.ndarray
    threshold: float

    def to_json(self) -> dict[str, Any]:
        """JSON form stored in the weights' metadata under "ood"."""
        return {
            "mean": self.mean.tolist(),
            "whiten": self.whiten.tolist(),
            "threshold": float(self.threshold),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatentStats:
        """Inverse of ``to_json``."""
        return cls(
            mean=np.asarray(data["mean"], dtype=np.float64),
            whiten=np.asarray(data["whiten"], dtype=np.float64),
            threshold=float(data["threshold"]),
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
