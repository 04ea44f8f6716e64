"""The live terminal view: what it records from replies and what it draws (no terminal)."""

from __future__ import annotations

import io
import threading

from rich.console import Console

from kmtr_stream.demo.live import LiveView, SliceRow, sparkline
from kmtr_stream.demo.report import SubjectOutcome
from kmtr_stream.messages import ErrorReport, Result


def slice_result(s: int, p: int, latency: float) -> Result:
    return Result(kind="slice", body={
        "slice": s, "phase": p, "lines_used": 17, "final": True,
        "areas_mm2": {"LV": 1234.4, "RV": 567.0, "MYO": 890.6},
        "timings_ms": {"post_last_line": latency}, "flags": [],
    })


def drawn(view: LiveView) -> str:
    console = Console(record=True, width=140, file=io.StringIO())
    console.print(view.render())
    return console.export_text()


def test_sparkline_scales_min_to_max_and_skips_nan() -> None:
    assert sparkline([]) == ""
    assert sparkline([5.0, 5.0]) == "▁▁"
    assert sparkline([0.0, 7.0, float("nan"), 3.5]) == "▁█▅"
    assert len(sparkline([float(i) for i in range(100)], width=10)) == 10
    assert sparkline([1.0, 2.0, 3.0], width=2) == "▁█"  # the newest values


def test_slice_row_reads_the_documented_result_fields() -> None:
    row = SliceRow.from_body("zmq-1", slice_result(3, 7, 8.25).body)
    assert (row.source, row.slice, row.phase, row.lines_used) == ("zmq-1", 3, 7, 17)
    assert row.latency_ms == 8.25 and row.areas_mm2["MYO"] == 890.6


def test_rows_sparkline_errors_and_summary_are_drawn() -> None:
    view = LiveView(max_rows=3)
    view.start_subject(1000004)
    for i in range(5):
        view.on_reply(slice_result(i, 0, 2.0 + i))
    view.on_reply(ErrorReport(code="data_fault", message="NaN in readout 12"))
    text = drawn(view)
    assert "streaming subject 1000004" in text
    assert "latency ms" in text and "MYO mm²" in text
    # Only the newest three rows stay; the median is over all five.
    assert "│ 1000004 │     4 │" in text and "│ 1000004 │     1 │" not in text
    assert "median 4.0 ms" in text and "over 5 slices" in text
    assert "[data_fault] NaN in readout 12" in text
    outcome = SubjectOutcome(subject_id=1000004, true_class="HCM",
                             true_phenotypes={"LVEDV": 150.0}, dice_myo=0.812)
    outcome.subject = {"diagnosis": {"class": "HCM", "probabilities": {"HCM": 0.9}},
                       "phenotypes": {"LVEDV": 142.5}, "phenotypes_from_segmentation": {}}
    view.finish_subject(outcome)
    text = drawn(view)
    assert "true HCM, predicted HCM (right); myo Dice 0.812" in text
    assert "150.0" in text and "142.5" in text
    assert "class correct 1/1" in text


def test_server_view_takes_outputs_from_many_threads() -> None:
    view = LiveView(source_name="connection", max_rows=1000)

    def one_connection(cid: str) -> None:
        for s in range(50):
            view.observe(cid, slice_result(s, 0, 1.0))
        view.observe(cid, Result(kind="subject", body={
            "diagnosis": {"class": "DCM", "probabilities": {"DCM": 0.7}},
            "phenotypes": {"LVEF": 22.0}, "n_missing": 0, "flags": []}))

    threads = [threading.Thread(target=one_connection, args=(f"mrd-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(view.rows) == 200 and len(view.latencies) == 200
    text = drawn(view)
    assert "connection" in text and "subject results" in text
    assert text.count("DCM") == 4 and "22.0" in text
