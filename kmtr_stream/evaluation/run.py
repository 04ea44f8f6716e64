"""Cohort evaluation of k-MTR and the baselines at several accelerations."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from kmtr_stream.conventions import CLASSES, PHENOTYPES
from kmtr_stream.metrics import (
    blood_myocardium_contrast,
    dice_per_class,
    expected_calibration_error,
    hd95_per_class,
    macro_auc_ovr,
    mae_rmse,
)
from kmtr_stream.model.calibration import softmax
from kmtr_stream.model.io import LoadedModel
from kmtr_stream.training.config import DataConfig
from kmtr_stream.training.data import CachedCohort
from kmtr_stream.training.predict import Predictions, predict_cohort

STRUCTURES = ("RV", "MYO", "LV")
#: Blood-myocardium contrast (``metrics.blood_myocardium_contrast``) from which a subject
#: counts as bright-blood, as bSSFP cine is (blood at least 1.67 times the myocardium).
BRIGHT_BLOOD_CONTRAST = 0.25


def evaluation_mask(n_ky: int, accel: int, n_calib: int, kind: str, seed: int) -> np.ndarray:
    """The fixed ``(ky,)`` mask of one acceleration, as a scan protocol would use it.

    ``accel = 1`` acquires every line: the undersampled models' own ceiling, to set
    beside the fully sampled upper bound (a network trained for undersampled input
    can fall short of it even then).
    """
    from simulator import sampling

    if accel == 1:
        return np.ones(n_ky, dtype=bool)
    rng = np.random.default_rng([seed, accel])
    if kind == "equispaced":
        return np.asarray(sampling.equispaced_mask(n_ky, accel, n_calib, rng), dtype=bool)
    return np.asarray(sampling.variable_density_mask(n_ky, accel, n_calib, rng), dtype=bool)


def task_metrics(
    pred: Predictions,
    cohort: CachedCohort,
    loaded: LoadedModel,
    ref_mean: np.ndarray,
    ref_std: np.ndarray,
    hd95_subjects: int,
    bright: np.ndarray,
) -> dict[str, Any]:
    """All task metrics of one model at one acceleration.

    ``bright``: ``(subjects,)`` bool, the cohort's bright-blood subjects (a property of
    the cohort alone, so ``evaluate`` finds them once for every model and acceleration).

    Phenotypes are reported in physical units and standardised with the
    reference statistics ``ref_mean``/``ref_std`` (the k-MTR training set's),
    so every model is scored on the same scale.
    """
    target_labels = np.asarray(cohort.labels)
    dice = dice_per_class(pred.labels, target_labels, 4)
    vox = tuple(float(v) for v in cohort.voxel_size_mm[0])
    spacing = (vox[2], vox[1], vox[0])  # (dz, dy, dx)
    m = min(hd95_subjects, len(cohort))
    hd = hd95_per_class(pred.labels[:m], target_labels[:m], 4, spacing)
    phen = pred.phenotypes_std * loaded.phen_std + loaded.phen_mean
    truth = cohort.phenotypes.astype(np.float64)
    mae, rmse = mae_rmse(phen, truth)
    mae_s, rmse_s = mae_rmse((phen - ref_mean) / ref_std, (truth - ref_mean) / ref_std)
    probs = softmax(pred.logits, loaded.temperature)
    targets = cohort.diagnosis
    return {
        "segmentation": {
            "dice": {s: float(np.nanmean(dice[:, i])) for i, s in enumerate(STRUCTURES)},
            "hd95_mm": {s: float(np.nanmean(hd[:, i])) for i, s in enumerate(STRUCTURES)},
            "hd95_subjects": m,
            # Contrast families: bright-blood (bSSFP-like) subjects apart from the rest.
            "dice_by_contrast": {
                group: {
                    "n": int(sel.sum()),
                    **{s: float(np.nanmean(dice[sel, i])) if sel.any() else float("nan")
                       for i, s in enumerate(STRUCTURES)},
                }
                for group, sel in (("bright_blood", bright), ("dark_or_low", ~bright))
            },
        },
        "phenotypes": {
            "mae": dict(zip(PHENOTYPES, map(float, mae), strict=True)),
            "rmse": dict(zip(PHENOTYPES, map(float, rmse), strict=True)),
            "mae_standardised": dict(zip(PHENOTYPES, map(float, mae_s), strict=True)),
            "rmse_standardised": dict(zip(PHENOTYPES, map(float, rmse_s), strict=True)),
            "mae_standardised_mean": float(mae_s.mean()),
            "rmse_standardised_mean": float(rmse_s.mean()),
        },
        "classification": {
            "auc_macro_ovr": macro_auc_ovr(probs, targets),
            "accuracy": float((probs.argmax(axis=1) == targets).mean()),
            "ece": expected_calibration_error(probs, targets),
            "class_counts": {c: int((targets == i).sum()) for i, c in enumerate(CLASSES)},
        },
    }


def evaluate(
    models: dict[str, LoadedModel],
    data: DataConfig,
    n_subjects: int,
    accelerations: list[int],
    mask_kind: str = "equispaced",
    n_calib: int = 4,
    mask_seed: int = 0,
    batch_size: int = 8,
    hd95_subjects: int = 1000,
    progress: bool = True,
    cohort_size: int = 0,
) -> dict[str, Any]:
    """Evaluate every model on ``n_subjects`` test subjects at each acceleration.

    ``cohort_size`` > ``n_subjects`` reuses a cached test cohort of that size.
    Models whose input is the fully sampled image are evaluated once and
    reported at every acceleration (they do not see the mask).

    Returns:
        ``{"config": ..., "models": {name: {"by_accel": {accel: metrics}, "seconds": s}}}``.
    """
    from kmtr_stream.training.data import build_cohort

    t0 = time.perf_counter()
    # a larger cached test cohort can serve a smaller evaluation (its first subjects)
    cohort = build_cohort("test", max(cohort_size, n_subjects), replace(data), progress)
    cohort = cohort.head(n_subjects)
    sim_s = time.perf_counter() - t0
    ref = next(iter(models.values()))
    bright = blood_myocardium_contrast(np.asarray(cohort.image), np.asarray(cohort.labels)) \
        >= BRIGHT_BLOOD_CONTRAST
    n_ky = int(cohort.kspace.shape[-2])
    out: dict[str, Any] = {
        "config": {
            "n_subjects": n_subjects,
            "accelerations": accelerations,
            "mask_kind": mask_kind,
            "n_calib": n_calib,
            "mask_seed": mask_seed,
            "split": "test",
            "seed": data.seed,
            "sim": data.sim,
            "torch_threads": torch.get_num_threads(),
        },
        "cohort_seconds": round(sim_s, 1),
        "models": {},
    }
    for name, loaded in models.items():
        t1 = time.perf_counter()
        by_accel: dict[str, Any] = {}
        full_input = loaded.kind == "image" and loaded.image_input == "full"
        cached: dict[str, Any] | None = None
        for accel in accelerations:
            if full_input and cached is not None:
                by_accel[str(accel)] = cached
                continue
            mask = evaluation_mask(n_ky, accel, n_calib, mask_kind, mask_seed)
            pred = predict_cohort(
                loaded,
                cohort,
                mask,
                batch_size,
                loaded.phen_mean,
                loaded.phen_std,
                progress,
                desc=f"{name} R={accel}",
            )
            res = task_metrics(
                pred, cohort, loaded, ref.phen_mean, ref.phen_std, hd95_subjects, bright
            )
            res["lines_acquired"] = n_ky if full_input else int(mask.sum())
            by_accel[str(accel)] = res
            cached = res
        out["models"][name] = {
            "by_accel": by_accel,
            "seconds": round(time.perf_counter() - t1, 1),
            "kind": loaded.kind,
            "image_input": loaded.image_input,
        }
    return out


def format_table(results: dict[str, Any]) -> str:
    """Plain-text table: one row per model and acceleration."""
    head = (
        f"{'model':<10} {'R':>3} {'lines':>5} {'Dice RV':>7} {'MYO':>6} {'LV':>6} "
        f"{'HD95 MYO':>8} {'AUC':>6} {'acc':>6} {'ECE':>6} {'phenMAE(std)':>12} "
        f"{'LVEF MAE':>8} {'LVEDV MAE':>9}"
    )
    rows = [head, "-" * len(head)]
    for name, model in results["models"].items():
        for accel, r in model["by_accel"].items():
            seg, cls, ph = r["segmentation"], r["classification"], r["phenotypes"]
            rows.append(
                f"{name:<10} {accel:>3} {r['lines_acquired']:>5} {seg['dice']['RV']:>7.3f} "
                f"{seg['dice']['MYO']:>6.3f} {seg['dice']['LV']:>6.3f} "
                f"{seg['hd95_mm']['MYO']:>8.2f} {cls['auc_macro_ovr']:>6.3f} "
                f"{cls['accuracy']:>6.3f} {cls['ece']:>6.3f} {ph['mae_standardised_mean']:>12.3f} "
                f"{ph['mae']['LVEF']:>8.2f} {ph['mae']['LVEDV']:>9.2f}"
            )
    rows += ["", "Dice RV / MYO / LV by blood-myocardium contrast "
             f"(bright blood: >= {BRIGHT_BLOOD_CONTRAST}, as bSSFP cine)"]
    for name, model in results["models"].items():
        for accel, r in model["by_accel"].items():
            groups = r["segmentation"].get("dice_by_contrast", {})
            cells = [
                f"{g} ({v['n']}): {v['RV']:.3f} / {v['MYO']:.3f} / {v['LV']:.3f}"
                for g, v in groups.items()
            ]
            rows.append(f"{name:<10} {accel:>3}  " + "   ".join(cells))
    return "\n".join(rows)
