"""Training curves of the shipped runs (docs/training_curves.png).

    python scripts/plot_training.py runs/kmtr_default runs/recon_default \
        --out docs/training_curves.png

Left: total and segmentation loss per logged step (moving median over 10 logs);
right: validation Dice (LV myocardium, LV, RV) at 4x.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _load(run: Path) -> tuple[list[dict], list[dict]]:
    logs, vals = [], []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "val" in rec:
            vals.append(rec)
        elif "seg" in rec:
            logs.append(rec)
    return logs, vals


def _smooth(x: np.ndarray, k: int = 10) -> np.ndarray:
    return np.array([np.median(x[max(0, i - k + 1) : i + 1]) for i in range(len(x))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default="docs/training_curves.png")
    args = ap.parse_args()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for run in map(Path, args.runs):
        logs, vals = _load(run)
        steps = np.array([r["step"] for r in logs])
        a.plot(steps, _smooth(np.array([r["seg"] for r in logs])), label=f"{run.name} seg loss")
        if vals:
            vs = [r["step"] for r in vals]
            for key, style in (("dice_myo", "-o"), ("dice_lv", "--s"), ("dice_rv", ":^")):
                b.plot(vs, [r["val"][key] for r in vals], style, label=f"{run.name} {key}")
    a.set_xlabel("step")
    a.set_ylabel("loss")
    a.legend(fontsize=8)
    b.set_xlabel("step")
    b.set_ylabel("validation Dice at 4x")
    b.set_ylim(0, 1)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)


if __name__ == "__main__":
    main()
