"""Trace report: stage order, counts, trigger split and percentiles on a fixture trace."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from kmtr_stream.chain.trace_report import format_table, read_trace, stage_table, summarize
from kmtr_stream.chain.tracing import TraceWriter
from kmtr_stream.cli import main
from kmtr_stream.errors import KmtrError


def _fixture(path: Path) -> None:
    """Messages 0..9: 'pre' takes (i+1) us, 'buf' 2 us; 4 and 9 are triggers (inference 100 us)."""
    w = TraceWriter(path, "c1")
    t = 0
    for i in range(10):
        w.write(i, "queue:0", "Acquisition", t, t + 500)
        w.write(i, "pre", "Acquisition", t + 500, t + 500 + (i + 1) * 1000)
        w.write(i, "buf", "Acquisition", t + 20_000, t + 22_000)
        if i in (4, 9):
            w.write(i, "infer", "SliceKSpace", t + 22_000, t + 122_000)
            w.write(i, "emit", "Image", t + 122_000, t + 123_000)
            w.write(i, "emit", "Result", t + 123_000, t + 125_000)
        t += 1_000_000
    w.write(None, "buf", "flush", t, t + 10)
    w.close()


def test_stage_order_counts_and_trigger_split(tmp_path: Path) -> None:
    _fixture(tmp_path / "t.jsonl")
    head, records = read_trace(tmp_path / "t.jsonl")
    assert head["connection"] == "c1" and len(records) == 37
    table = stage_table(records)
    got = [(r["stage"], r["kind"], r["count"]) for r in table["stages"]]
    assert got == [
        ("queue:0", "per message", 8), ("queue:0", "on trigger", 2),
        ("pre", "per message", 8), ("pre", "on trigger", 2),
        ("buf", "per message", 8), ("buf", "on trigger", 2),
        ("infer", "on trigger", 2), ("emit", "on trigger", 4),
    ]
    pre = table["stages"][2]
    assert pre["min_us"] == 1.0 and pre["max_us"] == 9.0 and pre["median_us"] == 5.0
    assert table["readout_to_result"]["count"] == 2
    assert table["readout_to_result"]["median_us"] == 125.0
    assert "readout to result" in format_table(table)


def test_warmup_skips_early_messages(tmp_path: Path) -> None:
    _fixture(tmp_path / "t.jsonl")
    table = stage_table(read_trace(tmp_path / "t.jsonl")[1], warmup=5)
    assert table["messages"] == 5 and table["triggers"] == 1


def test_percentiles() -> None:
    s = summarize([i * 1000 for i in range(1, 101)])
    assert (s["count"], s["min_us"], s["max_us"]) == (100, 1.0, 100.0)
    assert s["median_us"] == 50.5 and s["p95_us"] == pytest.approx(95.05)
    assert s["p99_us"] == pytest.approx(99.01)
    assert summarize([])["median_us"] is None


def test_writer_keeps_every_record_from_several_threads(tmp_path: Path) -> None:
    w = TraceWriter(tmp_path / "m.jsonl", "c")
    w.BATCH = 64

    def go(k: int) -> None:
        for i in range(1000):
            w.write(i, f"s{k}", "Acquisition", i, i + 1)

    threads = [threading.Thread(target=go, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    assert len(read_trace(tmp_path / "m.jsonl")[1]) == 4000


def test_cli_prints_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fixture(tmp_path / "t.jsonl")
    assert main(["trace", str(tmp_path / "t.jsonl"), "--warmup", "0",
                 "--json", str(tmp_path / "t.json")]) == 0
    assert "infer" in capsys.readouterr().out
    assert json.loads((tmp_path / "t.json").read_text())["triggers"] == 2
    (tmp_path / "bad.jsonl").write_text('{"connection": "x"}\n{"index": 1}\n')
    with pytest.raises(KmtrError, match="not a trace record"):
        read_trace(tmp_path / "bad.jsonl")
