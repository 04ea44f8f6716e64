"""The bench's PNG: post-last-line latency distributions and per-stage medians of both chains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_report(report: dict[str, Any], path: str | Path) -> None:
    """Two panels: latency histograms (paced, else unpaced) and per-stage median bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    chains = report["chains"]
    for name, c in chains.items():
        mode = "paced" if "paced" in c else "unpaced"
        xs = np.asarray(c.get(mode, {}).get("post_last_line_samples_ms", []), dtype=float)
        if xs.size:
            bins = np.logspace(np.log10(max(xs.min(), 1e-2)), np.log10(xs.max() + 1e-3), 40)
            ax1.hist(xs, bins=bins, alpha=0.6, label=f"{name} ({mode}, median "
                     f"{np.median(xs):.2f} ms)")
    ax1.set_xscale("log")
    ax1.set_xlabel("post-last-line latency (ms): last readout received -> result")
    ax1.set_ylabel("slices")
    ax1.legend(fontsize=8)
    names = list(chains)
    for k, name in enumerate(names):
        c = chains[name]
        stages = (c.get("paced") or c.get("unpaced") or {}).get("stages_ms", {})
        parts = [(s, d["median"]) for s, d in stages.items() if d["median"] is not None
                 and s not in ("gadget",)]
        left = 0.0
        for s, v in parts:
            ax2.barh(k, v, left=left, label=f"{name}: {s}")
            left += v
        total = (c.get("paced") or c.get("unpaced") or {}).get("post_last_line_ms", {})
        if total.get("median") is not None:
            ax2.plot([total["median"]], [k], "k|", markersize=20)
    ax2.set_yticks(range(len(names)), names)
    ax2.set_xlabel("median ms per slice (bars: stages; tick: post-last-line)")
    ax2.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"kmtr-stream bench on {report['device']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
