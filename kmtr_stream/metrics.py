"""Metrics (pure NumPy): Dice, HD95, AUC, MAE/RMSE, ECE.

Shared by training (validation Dice) and evaluation, so it sits below both.
"""

from __future__ import annotations

import numpy as np


def dice_per_class(pred: np.ndarray, target: np.ndarray, n_classes: int) -> np.ndarray:
    """Volumetric Dice of each foreground class per subject.

    Args:
        pred: ``(subjects, ...)`` integer label maps (any trailing axes, e.g.
            ``(phases, slices, ny, nx)``).
        target: same shape as ``pred``.
        n_classes: labels including background (0).

    Returns:
        ``(subjects, n_classes - 1)`` Dice; NaN where a class is absent from both.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ")
    n = pred.shape[0]
    p = pred.reshape(n, -1)
    t = target.reshape(n, -1)
    out = np.full((n, n_classes - 1), np.nan)
    for c in range(1, n_classes):
        pc, tc = p == c, t == c
        inter = (pc & tc).sum(axis=1)
        denom = pc.sum(axis=1) + tc.sum(axis=1)
        ok = denom > 0
        out[ok, c - 1] = 2.0 * inter[ok] / denom[ok]
    return out


def blood_myocardium_contrast(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per subject ``(b - m) / (b + m)``: mean LV-blood ``b`` against myocardium ``m``.

    Taken over every phase and slice of the fully sampled magnitude image, so it says
    what contrast a subject was scanned with: bSSFP cine gives bright blood (about
    0.4-0.6), a random or dark-blood contrast gives values near 0 or below.

    Args:
        image: ``(subjects, ...)`` magnitudes.
        labels: ``(subjects, ...)`` ACDC labels of the same shape (3 LV cavity, 2 myocardium).

    Returns:
        ``(subjects,)`` float64; NaN where a subject has no blood or no myocardium.
    """
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ")
    n = image.shape[0]
    img = np.asarray(image).reshape(n, -1)
    lab = np.asarray(labels).reshape(n, -1)

    def mean_of(label: int) -> np.ndarray:
        sel = lab == label
        count = sel.sum(axis=1)
        total = np.where(sel, img, 0.0).sum(axis=1, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)

    b, m = mean_of(3), mean_of(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((b - m) / (b + m))


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of a 3-D bool ``mask`` with at least one face neighbour outside it."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = mask.copy()
    for axis in range(3):
        for shift in (-1, 1):
            interior &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return mask & ~interior


def _directed(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Distance from every point of ``a`` ``(n, 3)`` to its nearest point of ``b`` ``(m, 3)``."""
    out = np.empty(len(a))
    for s in range(0, len(a), chunk):
        d2 = ((a[s : s + chunk, None, :] - b[None, :, :]) ** 2).sum(axis=-1)
        out[s : s + chunk] = np.sqrt(d2.min(axis=1))
    return out


def hd95(pred: np.ndarray, target: np.ndarray, spacing_mm: tuple[float, float, float]) -> float:
    """95th-percentile symmetric Hausdorff distance between two 3-D masks, in mm.

    Surfaces are the mask voxels with a face neighbour outside the mask; the
    value is the 95th percentile of the pooled surface-to-surface distances of
    both directions (the MedPy definition).

    Args:
        pred: ``(slices, ny, nx)`` bool mask.
        target: ``(slices, ny, nx)`` bool mask.
        spacing_mm: ``(dz, dy, dx)`` voxel spacing along the three axes.

    Returns:
        Distance in mm; NaN when either mask is empty.
    """
    pred = np.asarray(pred, dtype=bool)
    target = np.asarray(target, dtype=bool)
    if not pred.any() or not target.any():
        return float("nan")
    scale = np.asarray(spacing_mm, dtype=np.float64)
    sp = np.argwhere(_surface(pred)) * scale
    st = np.argwhere(_surface(target)) * scale
    return float(np.percentile(np.concatenate((_directed(sp, st), _directed(st, sp))), 95))


def hd95_per_class(
    pred: np.ndarray,
    target: np.ndarray,
    n_classes: int,
    spacing_mm: tuple[float, float, float],
) -> np.ndarray:
    """HD95 per subject and foreground class, averaged over phases.

    Args:
        pred: ``(subjects, phases, slices, ny, nx)`` label maps.
        target: same shape.
        n_classes: labels including background.
        spacing_mm: ``(dz, dy, dx)``.

    Returns:
        ``(subjects, n_classes - 1)`` mm; NaN where undefined in every phase.
    """
    n, p = pred.shape[:2]
    out = np.full((n, n_classes - 1), np.nan)
    for i in range(n):
        for c in range(1, n_classes):
            vals = [hd95(pred[i, j] == c, target[i, j] == c, spacing_mm) for j in range(p)]
            finite = [v for v in vals if np.isfinite(v)]
            if finite:
                out[i, c - 1] = float(np.mean(finite))
    return out


def binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties counted 1/2.

    Args:
        scores: ``(n,)`` scores, higher = more positive.
        positive: ``(n,)`` bool.

    Returns:
        AUC, or NaN when one of the two groups is empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # average ranks over runs of tied scores
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def macro_auc_ovr(probs: np.ndarray, targets: np.ndarray) -> float:
    """Macro-averaged one-vs-rest AUC over the classes present in ``targets``.

    Args:
        probs: ``(n, classes)`` class scores.
        targets: ``(n,)`` int class indices.
    """
    aucs = [binary_auc(probs[:, c], targets == c) for c in range(probs.shape[1])]
    finite = [a for a in aucs if np.isfinite(a)]
    return float(np.mean(finite)) if finite else float("nan")


def mae_rmse(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean absolute error and root-mean-square error of ``(n, k)`` arrays."""
    err = np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    return np.abs(err).mean(axis=0), np.sqrt((err**2).mean(axis=0))


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, n_bins: int = 15) -> float:
    """ECE: bin-weighted gap between confidence and accuracy of the top class.

    Args:
        probs: ``(n, classes)`` probabilities.
        targets: ``(n,)`` int class indices.
        n_bins: equal-width confidence bins on (0, 1].
    """
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == targets).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(conf[sel].mean() - correct[sel].mean())
    return float(ece)
