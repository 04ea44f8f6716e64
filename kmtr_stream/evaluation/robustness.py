"""Robustness checks: heart anywhere (rotations, shifts), broken inputs, OOD detection.

Pose changes are applied to the cached test k-space exactly, as the same
rotation or shift of the image would change it (``kspace.pose`` on both the
k-space and the labels), so the same subjects are compared in every pose.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kmtr_stream.kspace.normalisation import calibration_slice
from kmtr_stream.kspace.pose import shift_image, shift_kspace
from kmtr_stream.metrics import binary_auc, dice_per_class
from kmtr_stream.model.io import LoadedModel
from kmtr_stream.model.ood import LatentStats
from kmtr_stream.training.ood_calibration import subject_ood_scores
from kmtr_stream.training.predict import Predictions


def shift_centred(kspace: np.ndarray, labels: np.ndarray, pixels: int) -> tuple[np.ndarray, ...]:
    """Circular shift of the image by ``pixels`` along x: a phase ramp on ``(..., ky, kx)``."""
    return shift_kspace(kspace, 0, pixels), shift_image(labels, 0, pixels)


def renormalise(kspace: np.ndarray, n_calib: int = 12) -> np.ndarray:
    """Divide each ``(..., coils, ky, kx)`` buffer by its coil-0 calibration RMS (as the chain)."""
    region = calibration_slice(kspace.shape[-2], n_calib)
    rms = np.sqrt(np.mean(np.abs(kspace[..., :1, region, :]) ** 2, axis=(-3, -2, -1)))
    return (kspace / np.maximum(rms, 1e-12)[..., None, None, None]).astype(np.complex64)


def broken_inputs(
    kspace: np.ndarray, labels: np.ndarray, image: np.ndarray, seed: int = 7
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Deliberately broken versions of a cohort: ``{name: (kspace, labels, image)}``.

    ``noise_only``: complex Gaussian noise in place of the k-space (nothing to find;
    the truth stays the subject's, so every result is a failure). ``wrong_orientation``:
    readout and phase-encode axes swapped, i.e. the image transposed, a mirrored heart;
    its truth is the transposed label map, the anatomy that is actually in the image.
    Arrays are ``(..., coils, ky, kx)``, ``(..., ny, nx)`` and ``(..., ny, nx)``.
    """
    rng = np.random.default_rng(seed)
    noise = (rng.standard_normal(kspace.shape)
             + 1j * rng.standard_normal(kspace.shape)).astype(np.complex64)
    return {
        "noise_only": (renormalise(noise), labels, image),
        "wrong_orientation": (
            renormalise(np.swapaxes(kspace, -1, -2)),
            np.swapaxes(labels, -1, -2),
            np.swapaxes(image, -1, -2),
        ),
    }


def myo_dice(pred: Predictions, labels: np.ndarray) -> np.ndarray:
    """``(subjects,)`` LV-myocardium Dice over ED and ES."""
    return np.asarray(dice_per_class(pred.labels, labels, 4)[:, 1])


def subject_ood(loaded: LoadedModel, pred: Predictions, voxel_size_mm: np.ndarray) -> np.ndarray:
    """``(subjects,)`` out-of-distribution scores as the chain's (NaN without a calibration)."""
    ood = loaded.meta.get("ood")
    if not ood or pred.latents is None:
        return np.full(len(pred.labels), np.nan)
    return subject_ood_scores(LatentStats.from_json(ood), loaded, pred, voxel_size_mm)


def ood_report(
    in_scores: np.ndarray, out_scores: np.ndarray, out_dice: np.ndarray, threshold: float
) -> dict[str, Any]:
    """AUROC of the score: failures (myocardium Dice < 0.6) against in-distribution subjects."""
    fail = out_scores[out_dice < 0.6]
    scores = np.concatenate([in_scores, fail])
    positive = np.concatenate([np.zeros(in_scores.size, bool), np.ones(fail.size, bool)])
    return {
        "auroc_failures_vs_in_distribution": binary_auc(scores, positive),
        "n_in_distribution": int(in_scores.size),
        "n_failures": int(fail.size),
        "threshold": float(threshold),
        "flagged_in_distribution": float((in_scores > threshold).mean()),
        "flagged_failures": float((fail > threshold).mean()) if fail.size else float("nan"),
        "flagged_all_out": float((out_scores > threshold).mean()),
    }
