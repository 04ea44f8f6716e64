"""Figures of a bench run from what the streams got back (pure), and the report's schema."""

from __future__ import annotations

from typing import Any

import numpy as np

from kmtr_stream.messages import Result

#: Schema version of the bench report.
BENCH_SCHEMA_VERSION = 1


def dist(values: list[float]) -> dict[str, Any]:
    """``{"count", "min", "median", "p95", "p99", "max"}`` of values (None when empty)."""
    if not values:
        return {"count": 0, "min": None, "median": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values, dtype=np.float64)
    q = np.percentile(a, [50, 95, 99])
    return {"count": int(a.size), "min": round(float(a.min()), 3),
            "median": round(float(q[0]), 3), "p95": round(float(q[1]), 3),
            "p99": round(float(q[2]), 3), "max": round(float(a.max()), 3)}


def stream_figures(replies: list[Any], arrival_s: list[float], send_s: float,
                   readouts: int) -> dict[str, Any]:
    """What one stream shows.

    Args:
        replies: messages received before the server's CLOSE.
        arrival_s: per reply, seconds after the last readout (and CLOSE) went out.
        send_s: seconds from the first message sent to the last readout sent.
        readouts: readouts sent.

    Returns:
        ``{"post_last_line_ms": [...], "stages_ms": {name: [...]}, "first_result_s",
        "subject_after_last_readout_ms", "slices", "wall_s", "readouts"}``.
    """
    post: list[float] = []
    stages: dict[str, list[float]] = {}
    first = subject = None
    slices = 0
    for msg, t in zip(replies, arrival_s, strict=True):
        if not isinstance(msg, Result):
            continue
        if msg.kind == "slice":
            slices += 1
            timings = msg.body.get("timings_ms", {})
            if "post_last_line" in timings:
                post.append(float(timings["post_last_line"]))
            for k, v in timings.items():
                if k not in ("post_last_line", "batch"):
                    stages.setdefault(k, []).append(float(v))
            if first is None:
                first = send_s + t
        elif msg.kind == "subject":
            subject = t * 1000.0
    wall = send_s + (arrival_s[-1] if arrival_s else 0.0)
    return {"post_last_line_ms": post, "stages_ms": stages, "first_result_s": first,
            "subject_after_last_readout_ms": subject, "slices": slices, "wall_s": wall,
            "readouts": readouts}


def completed(streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The streams that got their CLOSE (failed ones carry only ``failed``, ``error``
    and ``t_start_s``)."""
    return [s for s in streams if not s.get("failed")]


def stream_errors(streams: list[dict[str, Any]]) -> list[str]:
    """The distinct ERROR texts the completed streams received, sorted."""
    return sorted({e for s in completed(streams) for e in s["errors"]})


def quarter_figures(streams: list[dict[str, Any]]) -> dict[str, Any]:
    """Post-last-line distributions of the completed streams that started in the run's
    first and last quarter (does latency grow over a long run?)."""
    done = completed(streams)
    t_end = max((s["t_start_s"] for s in streams), default=0.0)
    first = [x for s in done if s["t_start_s"] <= t_end / 4 for x in s["post_last_line_ms"]]
    last = [x for s in done if s["t_start_s"] >= 3 * t_end / 4 for x in s["post_last_line_ms"]]
    return {"first_quarter_post_last_line_ms": dist(first),
            "last_quarter_post_last_line_ms": dist(last)}


def chain_summary(streams: list[dict[str, Any]]) -> dict[str, Any]:
    """Distributions over the streams of one chain in one mode (paced or unpaced).

    Streams that failed (``"failed"``: no CLOSE in time) are counted in
    ``failed_streams`` with their first errors and enter no distribution.
    """
    failed = [s for s in streams if s.get("failed")]
    streams = completed(streams)
    wall = sum(s["wall_s"] for s in streams)
    return {
        "streams": len(streams),
        "failed_streams": len(failed),
        "failures": [s["error"] for s in failed[:4]],
        "post_last_line_ms": dist([x for s in streams for x in s["post_last_line_ms"]]),
        "post_last_line_samples_ms": [round(x, 3) for s in streams for x in s["post_last_line_ms"]],
        "first_result_s": dist([s["first_result_s"] for s in streams
                                if s["first_result_s"] is not None]),
        "subject_after_last_readout_ms": dist(
            [s["subject_after_last_readout_ms"] for s in streams
             if s["subject_after_last_readout_ms"] is not None]),
        "stages_ms": {k: dist([x for s in streams for x in s["stages_ms"].get(k, [])])
                      for k in sorted({k for s in streams for k in s["stages_ms"]})},
        "readouts_per_s": round(sum(s["readouts"] for s in streams) / wall, 1) if wall else None,
        "slices_per_s": round(sum(s["slices"] for s in streams) / wall, 2) if wall else None,
    }


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int, "device": str, "command": str, "machine": dict,
    "protocol": dict, "chains": dict, "order": list,
}
_CHAIN_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "config": str, "peak_rss_mb": (int, float), "idle_rss_mb": (int, float),
    "rss_per_connection_mb": (int, float), "peak_device_mb": (int, float, type(None)),
}
_DIST_KEYS = ("count", "min", "median", "p95", "p99", "max")


def validate_report(report: dict[str, Any]) -> None:
    """Raise ValueError naming the first key that the bench report lacks or has wrong."""
    def need(obj: dict[str, Any], spec: dict[str, Any], where: str) -> None:
        for key, typ in spec.items():
            if key not in obj:
                raise ValueError(f"bench report: {where}{key} missing")
            if not isinstance(obj[key], typ):
                raise ValueError(f"bench report: {where}{key} is {type(obj[key]).__name__}")

    need(report, _REQUIRED, "")
    if report["schema_version"] != BENCH_SCHEMA_VERSION:
        raise ValueError(f"bench report: schema_version {report['schema_version']}")
    for name, chain in report["chains"].items():
        need(chain, _CHAIN_REQUIRED, f"chains.{name}.")
        modes = [m for m in ("paced", "unpaced") if m in chain]
        if not modes:
            raise ValueError(f"bench report: chains.{name} has neither paced nor unpaced")
        for mode in modes:
            summary = chain[mode]
            for key in ("post_last_line_ms", "first_result_s", "subject_after_last_readout_ms"):
                if set(summary.get(key, {})) != set(_DIST_KEYS):
                    raise ValueError(f"bench report: chains.{name}.{mode}.{key} is not a "
                                     f"distribution {_DIST_KEYS}")
        if "unpaced" in chain and "network_alone_slices_per_s" not in chain:
            raise ValueError(f"bench report: chains.{name}.network_alone_slices_per_s missing")
