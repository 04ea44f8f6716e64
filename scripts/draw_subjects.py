"""Draw two simulated subjects of each class into docs/subjects.png.

Columns: mid-ventricular image at end-diastole and end-systole (coil-combined,
readout oversampling removed), ACDC labels over the ED image, log-magnitude of
the undersampled k-space (coil 0) and the sampling mask.

Usage: ``.venv/bin/python scripts/draw_subjects.py [--out docs/subjects.png] [--seed 0]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from kmtr_stream.conventions import CLASSES
from simulator.config import SimConfig
from simulator.kspace import ifft2c, remove_readout_oversampling, rss
from simulator.scan import simulate_scan

LABEL_COLOURS = ListedColormap([(0, 0, 0, 0), (0.2, 0.5, 1.0, 0.55), (0.1, 0.9, 0.3, 0.55),
                                (1.0, 0.2, 0.2, 0.55)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/subjects.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = SimConfig()
    cols = ("ED", "ES", "labels (ED)", "k-space, R=4", "mask")
    fig, axes = plt.subplots(2 * len(CLASSES), len(cols), figsize=(7.0, 14.0))
    mid = cfg.n_slices // 2 - 1
    for c, _name in enumerate(CLASSES):
        for r in range(2):
            row = 2 * c + r
            scan = simulate_scan(100 * c + r, args.seed, cfg, diagnosis=c)
            s = scan.subject
            k = remove_readout_oversampling(scan.kspace[:, mid], cfg.readout_oversampling)
            ed, es = (rss(ifft2c(k[p]), axis=0) for p in (0, s.es_phase))
            vmax = float(np.percentile(ed, 99.5))
            under = np.abs(k[0, 0]) * scan.plan.mask[:, None]
            panels = [ed, es, ed, np.log1p(under / (under.max() + 1e-12) * 1e4),
                      np.broadcast_to(scan.plan.mask[:, None], under.shape)]
            for j, img in enumerate(panels):
                ax = axes[row, j]
                cmap = "gray" if j < 3 else ("magma" if j == 3 else "Greys_r")
                ax.imshow(img, cmap=cmap, vmin=0, vmax=vmax if j < 3 else None,
                          interpolation="nearest")
                if j == 2:
                    ax.imshow(s.labels[0, mid], cmap=LABEL_COLOURS, vmin=0, vmax=3,
                              interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(cols[j], fontsize=8)
            ph = s.phenotypes
            axes[row, 0].set_ylabel(f"{CLASSES[c]}\nLVEF {ph['LVEF']:.0f}%\nRVEF {ph['RVEF']:.0f}%",
                                    fontsize=7)
    fig.tight_layout(pad=0.3)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
