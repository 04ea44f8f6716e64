"""``kmtr-stream bench`` end to end on tiny sizes (real sockets, both chains) and its schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kmtr_stream.bench.stats import dist, stream_figures, validate_report
from kmtr_stream.cli import main
from kmtr_stream.messages import Result

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    rc = main(["bench", "--subjects", "1", "--rounds", "1", "--slices", "2", "--phases", "2",
               "--recon-config", str(ROOT / "configs" / "recon_then_analyze.toml"),
               "--out", str(out)])
    assert rc == 0
    assert (out / "bench.png").stat().st_size > 0
    return dict(json.loads((out / "bench.json").read_text()))


def test_report_has_both_chains_side_by_side(report: dict[str, Any]) -> None:
    validate_report(report)
    assert report["order"] == ["kmtr", "recon_then_analyze"]
    assert report["chains"]["kmtr"]["config"] == "configs/kmtr_streaming.toml"  # the default
    assert report["chains"]["recon_then_analyze"]["config"] == "configs/recon_then_analyze.toml"
    for chain in report["chains"].values():
        assert chain["paced"]["post_last_line_ms"]["count"] == 4  # 2 slices x 2 phases
        assert chain["paced"]["subject_after_last_readout_ms"]["count"] == 1
        assert chain["unpaced"]["slices_per_s"] > 0 and chain["network_alone_slices_per_s"] > 0
        assert chain["peak_rss_mb"] >= chain["idle_rss_mb"] > 0
        assert not chain["errors"]
    assert report["device"].startswith(("cpu", "cuda"))


def test_schema_names_what_is_missing(report: dict[str, Any]) -> None:
    bad = copy.deepcopy(report)
    del bad["chains"]["kmtr"]["peak_rss_mb"]
    with pytest.raises(ValueError, match=r"chains\.kmtr\.peak_rss_mb missing"):
        validate_report(bad)
    bad = copy.deepcopy(report)
    bad["chains"]["recon_then_analyze"]["paced"]["post_last_line_ms"] = {"median": 1.0}
    with pytest.raises(ValueError, match="not a distribution"):
        validate_report(bad)
    bad = copy.deepcopy(report)
    bad["schema_version"] = 99
    with pytest.raises(ValueError, match="schema_version"):
        validate_report(bad)


def test_stream_figures_from_replies() -> None:
    replies = [Result("slice", {"timings_ms": {"post_last_line": 2.0, "network": 1.5}}),
               Result("slice", {"timings_ms": {"post_last_line": 4.0, "network": 2.5}}),
               Result("subject", {})]
    fig = stream_figures(replies, [-0.5, 0.001, 0.004], send_s=2.0, readouts=100)
    assert fig["post_last_line_ms"] == [2.0, 4.0] and fig["stages_ms"]["network"] == [1.5, 2.5]
    assert fig["first_result_s"] == 1.5 and fig["subject_after_last_readout_ms"] == 4.0
    assert fig["slices"] == 2 and fig["wall_s"] == pytest.approx(2.004)
    assert dist([1.0, 2.0, 3.0])["median"] == 2.0


def test_a_chain_that_never_closes_is_counted_as_failed_not_a_crash() -> None:
    import zmq

    from kmtr_stream.bench.run import simulate, stream_all
    from kmtr_stream.bench.stats import chain_summary
    from simulator.config import SimConfig

    cfg = SimConfig(accel=4, n_slices=2, n_phases=2)
    scans = simulate(1, 0, cfg)
    ctx = zmq.Context()
    hung = ctx.socket(zmq.ROUTER)  # reads everything, answers nothing: an overloaded chain
    hung.linger = 0
    port = hung.bind_to_random_port("tcp://127.0.0.1")
    try:
        out = stream_all(f"tcp://127.0.0.1:{port}", scans, cfg, False, 2, timeout_s=1.0)
    finally:
        hung.close()
        ctx.term()
    assert len(out) == 2 and all(s["failed"] for s in out)
    assert all("no CLOSE within" in s["error"] for s in out)
    ok = stream_figures([Result("slice", {"timings_ms": {"post_last_line": 3.0}})], [0.01],
                        send_s=1.0, readouts=10)
    summary = chain_summary([ok, *out])
    assert summary["streams"] == 1 and summary["failed_streams"] == 2
    assert summary["post_last_line_ms"]["count"] == 1 and len(summary["failures"]) == 2


def test_errors_and_quarters_skip_failed_streams() -> None:
    """A failed stream has no figures: the error list and the first/last-quarter
    distributions come from the completed streams alone (a 16-scanner run that overloads
    the chain still gives its report)."""
    from kmtr_stream.bench.stats import quarter_figures, stream_errors

    early = {"t_start_s": 0.0, "errors": ["E1"], "post_last_line_ms": [1.0, 2.0]}
    late = {"t_start_s": 100.0, "errors": ["E2", "E1"], "post_last_line_ms": [5.0]}
    failed = {"failed": True, "error": "no CLOSE within 300 s", "t_start_s": 120.0}
    assert stream_errors([early, failed, late]) == ["E1", "E2"]
    q = quarter_figures([early, failed, late])
    assert q["first_quarter_post_last_line_ms"]["count"] == 2
    # t_end counts the failed stream's start (120 s): the 100 s stream is in the last quarter
    assert q["last_quarter_post_last_line_ms"]["median"] == 5.0
    assert quarter_figures([failed])["last_quarter_post_last_line_ms"]["count"] == 0
