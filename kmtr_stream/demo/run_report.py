"""``demo --report DIR``: a browsable record of one demo run.

Per subject, a PNG of the returned label maps beside the simulator's ground
truth for every slice at ED and ES, the recorded stream (the ISMRMRD dataset
that was sent, with its ground-truth sidecars, and the replies as the
transport's ResultWriter stores them); for the run, a latency histogram and
``index.html`` linking all of it with ``results.json``.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import ismrmrd
import numpy as np

from kmtr_stream.conventions import PHENOTYPES
from kmtr_stream.demo.report import SubjectOutcome
from kmtr_stream.demo.scanner import StreamReport, save_replies
from simulator.config import SimConfig
from simulator.scan import ScanData
from simulator.writer import subject_stem, write_scan

#: ACDC label colours: background, RV cavity, LV myocardium, LV cavity.
LABEL_RGB = np.array([[0, 0, 0], [51, 128, 255], [26, 230, 77], [255, 51, 51]], np.uint8)


def returned_label_maps(replies: list[object]) -> dict[tuple[int, int], np.ndarray]:
    """The label IMAGEs a chain sent back, by (phase, slice), as 2-D int arrays."""
    maps: dict[tuple[int, int], np.ndarray] = {}
    for msg in replies:
        if isinstance(msg, ismrmrd.Image):
            data = np.asarray(msg.data)
            ny, nx = data.shape[-2:]
            maps[(int(msg.phase), int(msg.slice))] = data.reshape(ny, nx).astype(np.int64)
    return maps


def colour(labels: np.ndarray) -> np.ndarray:
    """``(ny, nx)`` ACDC labels -> ``(ny, nx, 3)`` uint8 RGB (unknown values grey)."""
    lab = np.asarray(labels)
    known = (lab >= 0) & (lab < len(LABEL_RGB))
    rgb = np.full((*lab.shape, 3), 128, np.uint8)
    rgb[known] = LABEL_RGB[lab[known]]
    return rgb


@dataclass
class SubjectFiles:
    """Where one subject's report files went (relative to the report directory)."""

    labels_png: str
    stream_h5: str
    replies_dir: str


def overlay(labels: np.ndarray, image: np.ndarray | None) -> np.ndarray:
    """Label colours over a magnitude image of the same grid (colours alone otherwise)."""
    rgb = colour(labels).astype(np.float32)
    if image is None or image.shape != labels.shape:
        return rgb.astype(np.uint8)
    mag = np.abs(image).astype(np.float32)
    grey = np.repeat((255.0 * mag / max(float(mag.max()), 1e-12))[..., None], 3, axis=-1)
    fg = (np.asarray(labels) > 0)[..., None]
    return np.where(fg, 0.45 * grey + 0.55 * rgb, grey).astype(np.uint8)


def write_label_png(
    path: Path, truth: np.ndarray, returned: dict[tuple[int, int], np.ndarray],
    ed_phase: int, es_phase: int, title: str, images: np.ndarray | None = None,
) -> None:
    """Rows ED truth, ED returned, ES truth, ES returned; one column per slice.

    ``images`` (``(phases, slices, ny, nx)``, the phantom) goes under the labels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_slices = truth.shape[1]
    rows = [("ED truth", ed_phase, True), ("ED returned", ed_phase, False),
            ("ES truth", es_phase, True), ("ES returned", es_phase, False)]
    fig, axes = plt.subplots(len(rows), n_slices, figsize=(1.3 * n_slices + 0.8, 5.6),
                             squeeze=False)
    for r, (name, phase, is_truth) in enumerate(rows):
        for s in range(n_slices):
            ax = axes[r, s]
            ax.set_xticks([])
            ax.set_yticks([])
            img = truth[phase, s] if is_truth else returned.get((phase, s))
            if img is None:
                ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
            else:
                under = None if images is None else images[phase, s]
                ax.imshow(overlay(img, under), interpolation="nearest")
            if s == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title(f"slice {s}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_latency_png(path: Path, latencies_ms: list[float]) -> None:
    """Histogram of the run's post-last-line latencies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    if latencies_ms:
        ax.hist(latencies_ms, bins=min(40, max(5, len(latencies_ms) // 4)), color="#3366cc")
        ax.axvline(float(np.median(latencies_ms)), color="k", ls="--", lw=1,
                   label=f"median {np.median(latencies_ms):.1f} ms")
        ax.legend(fontsize=8)
    ax.set_xlabel("post-last-line latency (ms)")
    ax.set_ylabel("slices")
    ax.set_title(f"{len(latencies_ms)} slice results", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_subject(
    out: Path, scan: ScanData, cfg: SimConfig, report: StreamReport, outcome: SubjectOutcome,
) -> SubjectFiles:
    """One subject's label PNG, recorded stream and stored replies under ``out``."""
    stem = subject_stem(outcome.subject_id)
    png = f"{stem}_labels.png"
    subject = scan.subject
    write_label_png(
        out / png, subject.labels, returned_label_maps(report.replies),
        0, int(subject.es_phase),  # the simulator's ED is phase 0
        f"subject {outcome.subject_id}: true {outcome.true_class}, predicted "
        f"{outcome.predicted_class or '-'}, myo Dice {outcome.dice_myo:.3f}",
        scan.images,
    )
    h5 = write_scan(scan, cfg, out / "streams")
    replies = save_replies(report, out / "replies" / stem, scan.xml(cfg))
    return SubjectFiles(png, str(h5.relative_to(out)), str(replies.relative_to(out)))


def _cell(value: object) -> str:
    return f"<td>{html.escape(str(value))}</td>"


def write_index(
    out: Path, outcomes: list[SubjectOutcome], files: list[SubjectFiles], summary: str,
) -> Path:
    """``index.html``: the run summary, the latency histogram, one section per subject."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>k-MTR Stream demo report"
        "</title><style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:"
        "collapse}td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}</style>"
        "</head><body><h1>k-MTR Stream demo report</h1>",
        f"<p id='summary'>{html.escape(summary)}</p>",
        "<p><a href='results.json'>results.json</a>. Label maps: RV cavity blue, LV "
        "myocardium green, LV cavity red, over the phantom's fully sampled magnitude; "
        "columns are slices, base to apex.</p>",
        "<img id='latency' src='latency.png' alt='latency histogram'>",
    ]
    for o, f in zip(outcomes, files, strict=True):
        subject = o.subject or {}
        net = subject.get("phenotypes", {})
        seg = subject.get("phenotypes_from_segmentation", {})
        nan = float("nan")
        rows = "".join(
            "<tr>" + _cell(n) + "".join(
                _cell(f"{d.get(n, nan):.1f}") for d in (o.true_phenotypes, net, seg)
            ) + "</tr>"
            for n in PHENOTYPES
        )
        probs = subject.get("diagnosis", {}).get("probabilities", {})
        prob_text = ", ".join(f"{c} {float(p):.2f}" for c, p in probs.items()) or "none"
        lat = o.post_last_line_ms()
        lat_text = f"median {np.median(lat):.1f} ms over {len(lat)} slices" if lat else "none"
        parts.append(
            f"<section class='subject' id='subject-{o.subject_id}'>"
            f"<h2>subject {o.subject_id}: true {html.escape(o.true_class)}, predicted "
            f"{html.escape(o.predicted_class or '-')}</h2>"
            f"<p>P(class): {html.escape(prob_text)}</p>"
            f"<p>myo Dice {o.dice_myo:.3f}; post-last-line latency {lat_text}; "
            f"{len(o.errors)} errors; recorded stream <a href='{html.escape(f.stream_h5)}'>"
            f"{html.escape(f.stream_h5)}</a>; replies <a href='{html.escape(f.replies_dir)}/"
            f"messages.jsonl'>{html.escape(f.replies_dir)}</a></p>"
            f"<img src='{html.escape(f.labels_png)}' alt='label maps'>"
            f"<table><tr><th>phenotype</th><th>true</th><th>network</th><th>from seg</th></tr>"
            f"{rows}</table></section>"
        )
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts))
    return path


def results_rows(outcomes: list[SubjectOutcome]) -> str:
    """``results.json`` text: one object per subject (errors as maps)."""
    rows = [{**asdict(o), "errors": [asdict(e) for e in o.errors]} for o in outcomes]
    return json.dumps(rows, indent=1, default=float)
