"""Compare what a chain sent back for one subject with the simulator's ground truth (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ismrmrd
import numpy as np

from kmtr_stream.conventions import CLASSES, PHENOTYPES, Label
from kmtr_stream.messages import ErrorReport, Result


@dataclass
class SubjectOutcome:
    """What came back for one streamed subject, next to its ground truth.

    Attributes:
        subject_id: simulator subject id.
        true_class: ground-truth ACDC class name.
        true_phenotypes: ground-truth phenotypes.
        subject: body of the subject Result (None if none came).
        slice_results: bodies of the slice Results, in arrival order.
        dice_myo: mean LV-myocardium Dice of the returned label maps vs truth.
        errors: ErrorReports that came back.
        stream_s: wall time from first readout sent to CLOSE received.
        readouts: readouts sent.
    """

    subject_id: int
    true_class: str
    true_phenotypes: dict[str, float]
    subject: dict[str, Any] | None = None
    slice_results: list[dict[str, Any]] = field(default_factory=list)
    dice_myo: float = float("nan")
    errors: list[ErrorReport] = field(default_factory=list)
    stream_s: float = 0.0
    readouts: int = 0

    @property
    def predicted_class(self) -> str | None:
        """Predicted class name, if the chain produced a diagnosis."""
        if self.subject and "diagnosis" in self.subject:
            return str(self.subject["diagnosis"]["class"])
        return None

    def post_last_line_ms(self) -> list[float]:
        """Per-slice latency from the slice's last readout to its network output."""
        return [
            float(r["timings_ms"]["post_last_line"])
            for r in self.slice_results
            if "post_last_line" in r.get("timings_ms", {})
        ]


def dice(pred: np.ndarray, truth: np.ndarray, label: int) -> float:
    """Dice overlap of one label; 1.0 when both maps lack it."""
    a, b = pred == label, truth == label
    denom = int(a.sum()) + int(b.sum())
    return 1.0 if denom == 0 else 2.0 * int((a & b).sum()) / denom


def collect(
    outcome: SubjectOutcome, replies: list[Any], true_labels: np.ndarray,
) -> SubjectOutcome:
    """Sort a chain's replies into ``outcome`` and score returned segmentations.

    Args:
        outcome: the subject's record (ground truth filled in).
        replies: every message the server sent before CLOSE.
        true_labels: ``(phases, slices, ny, nx)`` ground-truth label maps.
    """
    dices: list[float] = []
    for msg in replies:
        if isinstance(msg, Result) and msg.kind == "subject":
            outcome.subject = msg.body
        elif isinstance(msg, Result) and msg.kind == "slice":
            outcome.slice_results.append(msg.body)
        elif isinstance(msg, ErrorReport):
            outcome.errors.append(msg)
        elif isinstance(msg, ismrmrd.Image):
            s, p = int(msg.slice), int(msg.phase)
            labels = np.asarray(msg.data).reshape(true_labels.shape[-2:])
            dices.append(dice(labels, true_labels[p, s], int(Label.LV_MYOCARDIUM)))
    if dices:
        outcome.dice_myo = float(np.mean(dices))
    return outcome


def format_table(outcomes: list[SubjectOutcome]) -> str:
    """Human-readable summary: per subject, class and phenotypes predicted vs true."""
    lines = []
    for o in outcomes:
        lines.append(
            f"subject {o.subject_id}: true {o.true_class:>4}  predicted "
            f"{o.predicted_class or '-':>4}  myo Dice {o.dice_myo:.3f}  "
            f"{o.readouts} readouts in {o.stream_s:.2f} s  errors {len(o.errors)}"
        )
        if o.subject and "diagnosis" in o.subject:
            probs = o.subject["diagnosis"]["probabilities"]
            shown = "  ".join(f"{c} {probs.get(c, 0.0):.2f}" for c in CLASSES)
            lines.append(f"    P(class): {shown}")
        pred = (o.subject or {}).get("phenotypes", {})
        seg = (o.subject or {}).get("phenotypes_from_segmentation", {})
        lines.append(f"    {'':6}{'true':>9}{'network':>9}{'from seg':>9}")
        for name in PHENOTYPES:
            lines.append(
                f"    {name:6}{o.true_phenotypes[name]:9.1f}"
                f"{pred.get(name, float('nan')):9.1f}{seg.get(name, float('nan')):9.1f}"
            )
        lat = o.post_last_line_ms()
        if lat:
            lines.append(
                f"    post-last-line latency per slice: median {np.median(lat):.1f} ms, "
                f"max {np.max(lat):.1f} ms over {len(lat)} slices"
            )
        for e in o.errors:
            lines.append(f"    ERROR [{e.code}] {e.message}")
    return "\n".join(lines)
