"""Per-stage latency table of a JSON-lines chain trace (pure: records in, table out).

A trace (``serve --trace``, ``ChainRunner(trace_path=...)``) holds one record per
message and stage: gadget ids, ``queue:<n>`` waits and ``emit`` (hand-over to the
client). Messages that make a result leave the chain (a slice's last readout) are
the triggers: their stages are reported apart ("<stage> on trigger") from the
per-readout ones, and "readout to result" is from the trigger readout entering the
chain to its last output handed to the client.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from kmtr_stream.errors import KmtrError

#: Output messages that mark their input message as a trigger.
RESULT_MESSAGES = frozenset({"Image", "Result"})
SUMMARY_KEYS = ("count", "min_us", "median_us", "p95_us", "p99_us", "max_us")


def summarize(durations_ns: list[int]) -> dict[str, Any]:
    """Count, min, median, p95, p99 and max in microseconds (None when empty)."""
    if not durations_ns:
        return {"count": 0, **{k: None for k in SUMMARY_KEYS[1:]}}
    us = np.asarray(durations_ns, dtype=np.float64) / 1000.0
    q = np.percentile(us, [50, 95, 99])
    return {
        "count": int(us.size), "min_us": round(float(us.min()), 3),
        "median_us": round(float(q[0]), 3), "p95_us": round(float(q[1]), 3),
        "p99_us": round(float(q[2]), 3), "max_us": round(float(us.max()), 3),
    }


def read_trace(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header line and the records of one trace file."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines:
        raise KmtrError(f"{path}: empty trace file")
    try:
        head = json.loads(lines[0])
        records = [json.loads(x) for x in lines[1:] if x.strip()]
    except json.JSONDecodeError as exc:
        raise KmtrError(f"{path}: not a JSON-lines trace: {exc}") from exc
    for n, r in enumerate(records, start=2):
        if not {"index", "stage", "message", "t_enter_ns", "t_leave_ns"} <= r.keys():
            raise KmtrError(f"{path}: line {n} is not a trace record: {r}")
    return head, records


def stage_table(records: list[dict[str, Any]], warmup: int = 0) -> dict[str, Any]:
    """Per-stage summaries in chain order, messages with index < ``warmup`` skipped.

    Returns:
        ``{"warmup_messages", "messages", "triggers", "stages": [{"stage", "kind",
        **summary}], "readout_to_result": summary}``; ``kind`` is "per message" or
        "on trigger". Flush records (index None) are left out.
    """
    kept = [r for r in records if r["index"] is not None and r["index"] >= warmup]
    triggers = {r["index"] for r in kept if r["stage"] == "emit"
                and r["message"] in RESULT_MESSAGES}
    order: list[str] = []
    durations: dict[tuple[str, str], list[int]] = defaultdict(list)
    first_in: dict[int, int] = {}
    last_out: dict[int, int] = {}
    for r in kept:
        stage, i = r["stage"], r["index"]
        if stage not in order:
            order.append(stage)
        kind = "on trigger" if i in triggers else "per message"
        durations[(stage, kind)].append(r["t_leave_ns"] - r["t_enter_ns"])
        first_in[i] = min(first_in.get(i, r["t_enter_ns"]), r["t_enter_ns"])
        if stage == "emit" and i in triggers:
            last_out[i] = max(last_out.get(i, 0), r["t_leave_ns"])
    rows = [
        {"stage": s, "kind": kind, **summarize(durations[(s, kind)])}
        for s in order for kind in ("per message", "on trigger") if durations.get((s, kind))
    ]
    return {
        "warmup_messages": warmup,
        "messages": len({r["index"] for r in kept}),
        "triggers": len(triggers),
        "stages": rows,
        "readout_to_result": summarize([last_out[i] - first_in[i] for i in sorted(last_out)]),
    }


def format_table(table: dict[str, Any]) -> str:
    """The table as text, microseconds."""
    head = f"{'stage':28s}{'kind':>13s}" + "".join(f"{k:>11s}" for k in SUMMARY_KEYS)
    lines = [f"{table['messages']} messages ({table['triggers']} triggers) after "
             f"{table['warmup_messages']} warm-up messages; times in us", head]

    def row(name: str, kind: str, s: dict[str, Any]) -> str:
        vals = "".join(f"{s[k]:>11}" if s[k] is not None else f"{'-':>11}" for k in SUMMARY_KEYS)
        return f"{name:28s}{kind:>13s}{vals}"

    lines += [row(r["stage"], r["kind"], r) for r in table["stages"]]
    lines.append(row("readout to result", "on trigger", table["readout_to_result"]))
    return "\n".join(lines)
