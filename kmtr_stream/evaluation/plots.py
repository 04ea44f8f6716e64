"""Metric-versus-acceleration plots (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_vs_acceleration(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per metric: each model's value against the acceleration factor.

    Args:
        results: the ``evaluate`` result map (``results["models"][name]["by_accel"][accel]``).
        out_dir: directory the PNGs are written to.

    Returns:
        Paths of the written files.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = {
        "dice_myo": ("LV myocardium Dice", ("segmentation", "dice", "MYO")),
        "dice_lv": ("LV cavity Dice", ("segmentation", "dice", "LV")),
        "dice_rv": ("RV cavity Dice", ("segmentation", "dice", "RV")),
        "hd95_myo": ("LV myocardium HD95 (mm)", ("segmentation", "hd95_mm", "MYO")),
        "auc": ("Disease AUC (macro OvR)", ("classification", "auc_macro_ovr")),
        "accuracy": ("Disease accuracy", ("classification", "accuracy")),
        "phen_mae_std": ("Phenotype MAE (standardised)", ("phenotypes", "mae_standardised_mean")),
        "lvef_mae": ("LVEF MAE (%)", ("phenotypes", "mae", "LVEF")),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, (title, path) in metrics.items():
        fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
        for name, model in results["models"].items():
            xs, ys = [], []
            for accel, res in sorted(model["by_accel"].items(), key=lambda kv: float(kv[0])):
                value: Any = res
                for part in path:
                    value = value[part]
                xs.append(float(accel))
                ys.append(float(value))
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_xlabel("acceleration")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out_dir / f"{key}_vs_acceleration.png"
        fig.savefig(p)
        plt.close(fig)
        written.append(p)
    return written
