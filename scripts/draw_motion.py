"""Picture of the class-specific cardiac motion (docs/motion.png).

    python scripts/draw_motion.py [--out docs/motion.png]

One training subject per class (columns). Rows: the basal and a mid-ventricular
plane at end-diastole and end-systole (fully sampled magnitude, label contours on
top; at end-systole the descended base takes the basal plane into the atria,
which carry no label), and the LV volume over the cycle from the label maps.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from kmtr_stream.conventions import CLASSES, Label
from simulator.cohort import make_subject
from simulator.config import SimConfig
from simulator.phantom import render_image, render_labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/motion.png")
    ap.add_argument("--phases", type=int, default=25)
    args = ap.parse_args()
    cfg = SimConfig(randomize="train", n_phases=args.phases)
    # No rotation: the planes of every class sit alike, so the columns compare.
    fig, axes = plt.subplots(5, len(CLASSES), figsize=(2.2 * len(CLASSES), 10.5))
    for c, name in enumerate(CLASSES):
        s = make_subject(7000 + c, 0, cfg, diagnosis=c)
        p = replace(s.params, view_angle_rad=0.0, view_shift_mm=(0.0, 0.0))
        es = p.es_phase
        img = np.abs(render_image(p, cfg, [0, es]))
        lab = render_labels(p, cfg, [0, es])
        mid = cfg.n_slices // 2
        panels = ((0, 0, "base ED"), (1, 0, "base ES"), (0, mid, "mid ED"), (1, mid, "mid ES"))
        for r, (ph, sl, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img[ph, sl], cmap="gray")
            ax.contour(lab[ph, sl], levels=[0.5, 1.5, 2.5], colors=["c", "y", "r"],
                       linewidths=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title)
        axes[0, c].set_title(f"{name}: descent {p.base_descent_mm:.0f} mm", fontsize=9)
        voxel_ml = float(np.prod(cfg.voxel_size_mm)) / 1000.0
        lv = (s.labels == int(Label.LV_CAVITY)).sum(axis=(1, 2, 3)) * voxel_ml
        ax = axes[4, c]
        ax.plot(np.arange(cfg.n_phases) / cfg.n_phases, lv, "k.-", ms=3)
        ax.axvline(es / cfg.n_phases, color="r", lw=0.6)
        ax.set_xlabel("cycle fraction")
        ax.set_title(f"LVEF {s.phenotypes['LVEF']:.0f} %", fontsize=9)
        if c == 0:
            ax.set_ylabel("LV volume (mL)")
    fig.suptitle("class-specific motion: base descent (basal plane at ES) and LV volume curves")
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)


if __name__ == "__main__":
    main()
