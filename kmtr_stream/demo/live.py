"""Live terminal view (rich): slice rows as results arrive, a latency sparkline, and
subject summaries (with the ground truth beside the prediction in the demo).

``demo --live``: ``LiveView.on_reply`` takes the replies as the client receives
them, so rows appear during the acquisition, not after it. ``serve --live``:
``LiveView.observe`` is the servers' output observer (any chain thread), one
row source per connection. The renderables are plain functions of the
recorded rows, so what is shown can be tested without a terminal.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kmtr_stream.conventions import PHENOTYPES
from kmtr_stream.demo.report import SubjectOutcome
from kmtr_stream.messages import ErrorReport, Result

_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 48) -> str:
    """The last ``width`` values as block characters, scaled from their min to max."""
    vals = [v for v in values[-width:] if np.isfinite(v)]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo
    top = len(_BLOCKS) - 1
    return "".join(
        _BLOCKS[0 if span <= 0 else min(top, round((v - lo) / span * top))] for v in vals
    )


@dataclass
class SliceRow:
    """One slice result as shown: where from, counters, lines used, latency, areas."""

    source: str
    slice: int
    phase: int
    lines_used: int
    latency_ms: float
    areas_mm2: dict[str, float]
    flags: list[str] = field(default_factory=list)

    @classmethod
    def from_body(cls, source: str, body: dict[str, Any]) -> SliceRow:
        """From a slice Result's body (see the README's results format)."""
        return cls(
            source=source,
            slice=int(body.get("slice", -1)),
            phase=int(body.get("phase", -1)),
            lines_used=int(body.get("lines_used", 0)),
            latency_ms=float(body.get("timings_ms", {}).get("post_last_line", float("nan"))),
            areas_mm2={k: float(v) for k, v in body.get("areas_mm2", {}).items()},
            flags=[str(f) for f in body.get("flags", [])],
        )


def slice_table(rows: list[SliceRow], title: str, source_name: str = "subject") -> Table:
    """The most recent slice rows."""
    table = Table(title=title, expand=False, title_justify="left")
    for name in (source_name, "slice", "phase", "lines", "latency ms", "LV mm²", "MYO mm²",
                 "RV mm²", "flags"):
        table.add_column(name, justify="right" if name != "flags" else "left")
    for r in rows:
        table.add_row(
            r.source, str(r.slice), str(r.phase), str(r.lines_used),
            f"{r.latency_ms:.1f}",
            *(f"{r.areas_mm2.get(k, float('nan')):.0f}" for k in ("LV", "MYO", "RV")),
            ",".join(r.flags),
        )
    return table


def summary_title(outcome: SubjectOutcome) -> Text:
    """One line: the subject, true and predicted class, myocardium Dice."""
    predicted = outcome.predicted_class or "-"
    mark = "right" if predicted == outcome.true_class else "wrong"
    return Text(f"subject {outcome.subject_id}: true {outcome.true_class}, predicted "
                f"{predicted} ({mark}); myo Dice {outcome.dice_myo:.3f}", style="bold")


def summary_table(outcome: SubjectOutcome) -> Table:
    """One subject's phenotypes: ground truth, network, from segmentation."""
    subject = outcome.subject or {}
    table = Table()
    for name in ("phenotype", "true", "network", "from seg"):
        table.add_column(name, justify="right")
    net, seg = subject.get("phenotypes", {}), subject.get("phenotypes_from_segmentation", {})
    for name in PHENOTYPES:
        table.add_row(name, f"{outcome.true_phenotypes.get(name, float('nan')):.1f}",
                      f"{net.get(name, float('nan')):.1f}", f"{seg.get(name, float('nan')):.1f}")
    return table


def subjects_table(subjects: list[tuple[str, dict[str, Any]]]) -> Table:
    """Subject results a server sent (no ground truth there): class and key phenotypes."""
    table = Table(title="subject results", title_justify="left")
    for name in ("connection", "class", "P", "LVEDV", "LVEF", "LVM", "RVEF", "missing",
                 "flags"):
        table.add_column(name, justify="left" if name in ("connection", "flags") else "right")
    for source, body in subjects:
        dx = body.get("diagnosis", {})
        cls = str(dx.get("class", "-"))
        prob = float(dx.get("probabilities", {}).get(cls, float("nan")))
        phen = body.get("phenotypes", {})
        table.add_row(
            source, cls, f"{prob:.2f}",
            *(f"{float(phen.get(k, float('nan'))):.1f}" for k in ("LVEDV", "LVEF", "LVM",
                                                                   "RVEF")),
            str(body.get("n_missing", 0)), ",".join(str(f) for f in body.get("flags", [])),
        )
    return table


class LiveView:
    """The live view of one demo run.

    Args:
        console: where to draw (default: standard output).
        max_rows: slice rows kept on screen (the newest).
        source_name: what a row's source is ("subject" in the demo, "connection" for
            a server).
    """

    def __init__(self, console: Console | None = None, max_rows: int = 12,
                 source_name: str = "subject") -> None:
        self.console = console or Console()
        self.source_name = source_name
        self.rows: deque[SliceRow] = deque(maxlen=max_rows)
        self.subjects: deque[tuple[str, dict[str, Any]]] = deque(maxlen=6)
        self.latencies: list[float] = []
        self.errors: deque[str] = deque(maxlen=4)
        self.last: SubjectOutcome | None = None
        self.subject_id = -1
        self.subjects_done = 0
        self.n_right = 0
        self._lock = threading.RLock()  # a server's chain threads report at once
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        self._live = Live(self.render(), console=self.console, refresh_per_second=8,
                          transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.__exit__(None, None, None)
            self._live = None

    def start_subject(self, subject_id: int) -> None:
        """A new subject starts streaming."""
        self.subject_id = subject_id
        self._refresh()

    def on_reply(self, msg: Any) -> None:
        """One reply as the demo's client received it (the current subject's)."""
        self.observe(str(self.subject_id), msg)

    def observe(self, source: str, msg: Any) -> None:
        """One output of ``source`` (a server's ``Observer``; any thread)."""
        with self._lock:
            if isinstance(msg, Result) and msg.kind == "slice":
                row = SliceRow.from_body(source, msg.body)
                self.rows.append(row)
                self.latencies.append(row.latency_ms)
            elif isinstance(msg, Result) and msg.kind == "subject":
                self.subjects.append((source, msg.body))
            elif isinstance(msg, ErrorReport):
                self.errors.append(f"{source}: [{msg.code}] {msg.message}")
            else:
                return
            self._refresh()

    def finish_subject(self, outcome: SubjectOutcome) -> None:
        """The subject's CLOSE came: show its summary beside the ground truth."""
        with self._lock:
            self.last = outcome
            self.subjects.clear()  # the summary below shows it, with the truth
            self.subjects_done += 1
            self.n_right += outcome.predicted_class == outcome.true_class
            self._refresh()

    def render(self) -> RenderableType:
        """Everything on screen now."""
        with self._lock:
            return self._render()

    def _render(self) -> RenderableType:
        title = ("slice results" if self.subject_id < 0
                 else f"slice results (streaming subject {self.subject_id})")
        parts: list[RenderableType] = [
            slice_table(list(self.rows), title, self.source_name)
        ]
        lat = [v for v in self.latencies if np.isfinite(v)]
        if lat:
            parts.append(Text(
                f"post-last-line latency  {sparkline(lat)}  median {np.median(lat):.1f} ms, "
                f"p99 {np.percentile(lat, 99):.1f} ms over {len(lat)} slices"
            ))
        for e in self.errors:
            parts.append(Text(f"ERROR {e}", style="bold red"))
        if self.subjects:
            parts.append(subjects_table(list(self.subjects)))
        if self.last is not None:
            parts.append(summary_title(self.last))
            parts.append(summary_table(self.last))
            parts.append(Text(f"class correct {self.n_right}/{self.subjects_done}"))
        return Group(*parts)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())
