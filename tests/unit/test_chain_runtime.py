"""Chain runner: order, flush, pass-through, errors, header, backpressure, abort, stats, traces."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest

from kmtr_stream.chain.config import parse_chain_config
from kmtr_stream.chain.queues import QueueFullError
from kmtr_stream.chain.runtime import ChainRunner, RunnerState
from kmtr_stream.errors import KmtrError
from kmtr_stream.messages import Close, ErrorReport, Result, Text, XmlHeader
from tests.unit.chain_helpers import (
    HEADER,
    HEADER_XML,
    HoldGadget,
    TagGadget,
    make_acquisition,
)


def chain(body: str, queue_size: int = 64, policy: str = "block") -> Any:
    text = (
        f'[chain]\nname = "t"\nbackend = "numpy"\nqueue_size = {queue_size}\n'
        f'full_queue_policy = "{policy}"\n' + body
    )
    return parse_chain_config(text, "test.toml")


def run(spec: Any, messages: list[Any], **kw: Any) -> tuple[list[Any], ChainRunner]:
    out: list[Any] = []
    runner = ChainRunner(spec, header=HEADER, emit=out.append, connection_id="c1", **kw)
    runner.start()
    for m in messages:
        runner.submit(m)
    assert runner.close(timeout=10)
    return out, runner


PASS = '[[gadgets]]\nid = "pass"\ntype = "passthrough"\n'
TAG_HOLD = (
    '[[gadgets]]\nid = "tag"\ntype = "_test_tag"\n[[gadgets]]\nid = "hold"\ntype = "_test_hold"\n'
)


@pytest.mark.parametrize("threads", [False, True])
def test_passthrough_preserves_order_and_identity(threads: bool) -> None:
    body = PASS + '[[gadgets]]\nid = "pass2"\ntype = "passthrough"\n'
    if threads:
        body += "new_thread = true\n"
    msgs: list[Any] = [XmlHeader(HEADER_XML)] + [make_acquisition(i) for i in range(300)]
    out, runner = run(chain(body, queue_size=7), msgs)
    assert len(out) == len(msgs)
    assert all(a is b for a, b in zip(out, msgs, strict=True))
    stats = runner.stats()
    assert stats["submitted"] == 301 and stats["emitted"] == 301
    assert len(stats["queues"]) == (2 if threads else 1)
    assert all(q["high_water"] <= 7 for q in stats["queues"])


def test_unhandled_types_pass_through_unchanged() -> None:
    body = '[[gadgets]]\nid = "tag"\ntype = "_test_tag"\n'
    acq = make_acquisition(0)
    msgs = [Text("a"), acq, Result("r", {"k": 1}), Text("b")]
    out, _ = run(chain(body), msgs)
    assert out[0] == Text("ax") and out[1] is acq and out[2] is msgs[2] and out[3] == Text("bx")
    assert out[4] == Text("flushed tag")


def test_flush_runs_once_in_chain_order_and_outputs_go_downstream() -> None:
    TagGadget.log.clear()
    body = (
        '[[gadgets]]\nid = "t1"\ntype = "_test_tag"\n[gadgets.params]\ntag = "1"\n'
        '[[gadgets]]\nid = "t2"\ntype = "_test_tag"\nnew_thread = true\n'
        '[gadgets.params]\ntag = "2"\n'
        '[[gadgets]]\nid = "t3"\ntype = "_test_tag"\n[gadgets.params]\ntag = "3"\n'
    )
    out: list[Any] = []
    runner = ChainRunner(chain(body), header=HEADER, emit=out.append)
    runner.start()
    runner.submit(Text("m"))
    assert runner.close(timeout=10)
    assert runner.close(timeout=10)  # idempotent
    assert TagGadget.log == [("t1", "flush"), ("t2", "flush"), ("t3", "flush")]
    # t1's flush output crosses t2 and t3; t3's own flush output comes last.
    assert [m.text for m in out] == ["m123", "flushed t123", "flushed t23", "flushed t3"]
    with pytest.raises(KmtrError, match="end of stream"):
        runner.submit(Text("late"))


def test_gadget_exception_becomes_error_report_and_chain_continues(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = '[[gadgets]]\nid = "tag"\ntype = "_test_tag"\n[gadgets.params]\nfail_on = 1\n'
    body += '[[gadgets]]\nid = "ff"\ntype = "_test_flushfail"\n'
    with caplog.at_level(logging.ERROR, logger="kmtr_stream.chain"):
        out, runner = run(chain(body), [Text("a"), make_acquisition(0), Text("b"), Text("c")])
    assert out[0] == Text("ax") and out[3] == Text("cx")
    err = out[2]
    assert isinstance(err, ErrorReport)
    assert err.gadget == "tag" and err.message_index == 2 and err.code == "gadget"
    assert "boom on text 1" in err.message and "message #2" in err.message
    # flush failure of 'ff' is reported too, after tag's flush output passed through it
    assert out[4] == Text("flushed tag")
    assert isinstance(out[5], ErrorReport) and out[5].gadget == "ff"
    assert "cannot flush" in out[5].message
    assert runner.stats()["errors"] == 2
    assert "gadget 'tag' on message #2" in caplog.text


def test_gadgets_are_built_with_the_header_and_the_header_message_passes_on() -> None:
    out: list[Any] = []
    runner = ChainRunner(chain(TAG_HOLD), header=HEADER, emit=out.append)
    runner.start()
    hdr = XmlHeader(HEADER_XML)
    runner.submit(hdr)
    runner.submit(Text("z"))
    assert runner.close(timeout=10)
    assert out[0] is hdr
    header = runner.context.header
    assert header is HEADER.header and runner.context.geometry is HEADER.geometry
    assert header.encoding[0].encodedSpace.matrixSize.x == 16
    assert runner.context.geometry.encoded_x == 16 and runner.context.geometry.recon_x == 8
    gadgets = runner.gadgets
    assert len(gadgets) == 2
    assert all(getattr(g, "header", None) is header for g in gadgets)


def test_split_outputs_and_internal_messages_counted_not_emitted() -> None:
    body = '[[gadgets]]\nid = "split"\ntype = "_test_split"\n' + PASS
    out, runner = run(chain(body), [Text("p"), Text("q")])
    assert [m.text for m in out] == ["p/a", "p/b", "q/a", "q/b"]
    assert runner.stats()["internal_at_end"] == 2


def test_backpressure_blocks_producer_and_loses_nothing() -> None:
    body = '[[gadgets]]\nid = "slow"\ntype = "_test_tag"\n[gadgets.params]\ndelay_s = 0.01\n'
    out: list[Any] = []
    runner = ChainRunner(chain(body, queue_size=2), header=HEADER, emit=out.append)
    runner.start()
    n = 20
    t0 = time.perf_counter()
    for i in range(n):
        runner.submit(Text(str(i)))
    submit_s = time.perf_counter() - t0
    assert runner.close(timeout=10)
    # With room for ~2 queued + 2 in the worker's batch, the producer had to wait for the
    # slow gadget on most messages.
    assert submit_s >= (n - 5) * 0.01 * 0.8
    assert [m.text for m in out[:n]] == [f"{i}x" for i in range(n)]
    assert runner.stats()["queues"][0]["high_water"] <= 2


def test_policy_error_raises_naming_queue_and_size() -> None:
    body = '[[gadgets]]\nid = "slow"\ntype = "_test_tag"\n[gadgets.params]\ndelay_s = 0.2\n'
    runner = ChainRunner(
        chain(body, queue_size=2, policy="error"), header=HEADER, emit=lambda m: None
    )
    runner.start()
    with pytest.raises(
        QueueFullError, match=r"queue 0 \(before gadget 'slow'\) is full \(2 messages\)"
    ):
        for i in range(10):
            runner.submit(Text(str(i)))
    runner.abort("test over")


def test_abort_logs_in_flight_messages_and_held_state(caplog: pytest.LogCaptureFixture) -> None:
    body = (
        '[[gadgets]]\nid = "hold"\ntype = "_test_hold"\n'
        '[[gadgets]]\nid = "slow"\ntype = "_test_tag"\nnew_thread = true\n'
        "[gadgets.params]\ndelay_s = 0.05\n"
    )
    out: list[Any] = []
    runner = ChainRunner(
        chain(body, queue_size=4), header=HEADER, emit=out.append, connection_id="conn-7"
    )
    runner.start()
    runner.submit(Text("held"))
    runner.submit(XmlHeader(HEADER_XML))
    for i in range(3):
        runner.submit(Text(f"k{i}"))  # the hold gadget keeps these, nothing reaches 'slow'
    time.sleep(0.05)
    with caplog.at_level(logging.ERROR, logger="kmtr_stream.chain"):
        t0 = time.perf_counter()
        runner.abort("client vanished")
        assert time.perf_counter() - t0 < 1.5
    assert "connection conn-7" in caplog.text and "client vanished" in caplog.text
    assert "messages in flight" in caplog.text
    assert "'hold': 4 texts held" in caplog.text
    assert not any(isinstance(m, Text) for m in out)  # nothing flushed to the client
    runner.abort("again")  # idempotent
    with pytest.raises(KmtrError, match="aborted"):
        runner.submit(Text("x"))


def test_abort_wakes_blocked_producer() -> None:
    body = '[[gadgets]]\nid = "slow"\ntype = "_test_tag"\n[gadgets.params]\ndelay_s = 0.2\n'
    runner = ChainRunner(chain(body, queue_size=1), header=HEADER, emit=lambda m: None)
    runner.start()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for i in range(20):
                runner.submit(Text(str(i)))
        except KmtrError as exc:
            errors.append(exc)

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(0.1)
    runner.abort("gone")
    t.join(timeout=2)
    assert not t.is_alive() and errors


def test_close_message_ends_stream_and_is_not_emitted() -> None:
    out: list[Any] = []
    runner = ChainRunner(chain(PASS), header=HEADER, emit=out.append)
    runner.start()
    runner.submit(Text("a"))
    runner.submit(Close())
    assert runner.close(timeout=10)
    assert out == [Text("a")]


def test_stats_and_trace_file(tmp_path: Any) -> None:
    body = TAG_HOLD
    trace = tmp_path / "trace.jsonl"
    _, runner = run(chain(body), [Text(str(i)) for i in range(5)], trace_path=trace)
    stats = runner.stats()
    json.dumps(stats)
    tag = stats["stages"][0]
    assert tag["id"] == "tag" and tag["count"] == 5 and tag["median_us"] >= 0
    assert tag["p95_us"] >= tag["median_us"]
    assert stats["end_to_end"]["count"] == 0  # held texts are emitted at flush (index None)
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert lines[0]["connection"] == "c1"
    tag_lines = [r for r in lines[1:] if r["stage"] == "tag" and r["index"] is not None]
    assert [r["index"] for r in tag_lines] == [0, 1, 2, 3, 4]
    assert all(r["t_leave_ns"] >= r["t_enter_ns"] for r in lines[1:])
    # gadgets see the index and entry time of the message they process
    hold = runner.gadgets[1]
    assert isinstance(hold, HoldGadget)
    assert [t.message_index for t in hold.times] == [0, 1, 2, 3, 4, None]  # None: flush output
    assert all(t.t_enter_ns >= t.t_submit_ns for t in hold.times)


def test_emit_failure_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    def bad_emit(msg: Any) -> None:
        raise OSError("socket gone")

    runner = ChainRunner(chain(PASS), header=HEADER, emit=bad_emit, connection_id="c9")
    runner.start()
    runner.submit(Text("a"))
    with caplog.at_level(logging.ERROR, logger="kmtr_stream.chain"):
        runner.close(timeout=10)
    assert runner.stats()["emit_failures"] == 1
    assert "connection c9: emit failed" in caplog.text


def test_submit_before_start_and_double_start() -> None:
    runner = ChainRunner(chain(PASS), header=HEADER, emit=lambda m: None)
    with pytest.raises(KmtrError, match="before start"):
        runner.submit(Text("a"))
    runner.start()
    with pytest.raises(KmtrError, match="already started"):
        runner.start()
    runner.close(timeout=5)


def test_abort_names_every_in_flight_message(caplog: pytest.LogCaptureFixture) -> None:
    body = '[[gadgets]]\nid = "slow"\ntype = "_test_tag"\n[gadgets.params]\ndelay_s = 0.3\n'
    runner = ChainRunner(
        chain(body, queue_size=8), header=HEADER, emit=lambda m: None, connection_id="c5"
    )
    runner.start()
    for i in (10, 11, 12, 14, 15):  # caller-chosen stream indices (13 was consumed elsewhere)
        runner.submit(Text(str(i)), index=i)
    time.sleep(0.1)  # the worker is inside message #10 now
    with caplog.at_level(logging.ERROR, logger="kmtr_stream.chain"):
        runner.abort("peer reset")
    assert "connection c5" in caplog.text
    assert "5 messages in flight (#10..#12, #14..#15)" in caplog.text
    assert "worker 0 in #10" in caplog.text


def test_caller_indices_reach_error_reports() -> None:
    body = '[[gadgets]]\nid = "tag"\ntype = "_test_tag"\n[gadgets.params]\nfail_on = 0\n'
    out: list[Any] = []
    runner = ChainRunner(chain(body), header=HEADER, emit=out.append)
    runner.start()
    assert runner.submit(Text("a"), index=7) == 7
    assert runner.submit(Text("b")) == 8
    with pytest.raises(KmtrError, match="message index 3 is not above the previous one"):
        runner.submit(Text("c"), index=3)
    assert runner.close(timeout=10)
    assert isinstance(out[0], ErrorReport) and out[0].message_index == 7
    assert runner.stats()["submitted"] == 2


def test_outputs_yielded_before_a_failure_are_kept() -> None:
    body = '[[gadgets]]\nid = "split"\ntype = "_test_split"\n'
    out, _ = run(chain(body), [Text("fail"), Text("ok")])
    assert out[0] == Text("fail/a")
    assert isinstance(out[1], ErrorReport) and "half done" in out[1].message
    assert out[1].message_index == 0
    assert out[2:] == [Text("ok/a"), Text("ok/b")]


def test_inline_chain_runs_in_the_submitting_thread() -> None:
    TagGadget.log.clear()
    body = (
        '[[gadgets]]\nid = "t1"\ntype = "_test_tag"\n[gadgets.params]\ntag = "1"\n'
        '[[gadgets]]\nid = "t2"\ntype = "_test_tag"\n[gadgets.params]\ntag = "2"\n'
    )
    spec = parse_chain_config("[chain]\ninline = true\n" + body, "inline.toml")
    assert spec.inline
    seen: list[tuple[Any, int]] = []
    runner = ChainRunner(
        spec, header=HEADER, emit=lambda m: seen.append((m, threading.get_ident()))
    )
    runner.start()
    msgs: list[Any] = [XmlHeader(HEADER_XML), Text("a"), make_acquisition(0), Text("b")]
    for m in msgs:
        runner.submit(m)
    # Outputs were emitted during submit(), in this thread: no worker thread, no queue.
    assert [m for m, _ in seen] == [msgs[0], Text("a12"), msgs[2], Text("b12")]
    assert {tid for _, tid in seen} == {threading.get_ident()}
    assert runner.workers[0].thread is None  # inline: a worker without a thread
    assert runner.close(timeout=10)
    assert TagGadget.log == [("t1", "flush"), ("t2", "flush")]
    assert [m.text for m, _ in seen[4:]] == ["flushed t12", "flushed t2"]
    stats = runner.stats()
    assert stats["submitted"] == 4 and stats["emitted"] == 6
    with pytest.raises(KmtrError, match="end of stream"):
        runner.submit(Text("late"))


def test_inline_chain_hands_off_to_a_new_thread_gadget() -> None:
    body = (
        '[[gadgets]]\nid = "t1"\ntype = "_test_tag"\n[gadgets.params]\ntag = "1"\n'
        '[[gadgets]]\nid = "t2"\ntype = "_test_tag"\nnew_thread = true\n'
        '[gadgets.params]\ntag = "2"\n'
    )
    spec = parse_chain_config("[chain]\ninline = true\n" + body, "inline.toml")
    out, runner = run(spec, [Text(str(i)) for i in range(50)])
    assert [m.text for m in out[:50]] == [f"{i}12" for i in range(50)]
    assert [m.text for m in out[50:]] == ["flushed t12", "flushed t2"]
    assert len(runner.stats()["queues"]) == 2


def test_inline_chain_abort_calls_on_abort_and_refuses_more() -> None:
    spec = parse_chain_config("[chain]\ninline = true\n" + TAG_HOLD, "inline.toml")
    runner = ChainRunner(spec, header=HEADER, emit=lambda m: None)
    runner.start()
    runner.submit(Text("a"))
    runner.abort("client gone")
    assert runner.close(timeout=1) is False
    with pytest.raises(KmtrError, match="aborted"):
        runner.submit(Text("b"))


def test_inline_must_be_a_bool() -> None:
    with pytest.raises(KmtrError, match="inline"):
        parse_chain_config('[chain]\ninline = "yes"\n' + PASS, "bad.toml")


@pytest.mark.parametrize("inline", [True, False])
def test_a_crashed_worker_stops_the_runner(
    inline: bool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = parse_chain_config(f"[chain]\ninline = {str(inline).lower()}\n" + PASS, "c.toml")
    runner = ChainRunner(spec, header=HEADER, emit=lambda m: None, connection_id="c3")
    runner.start()
    assert runner.state is RunnerState.RUNNING and runner.stats()["state"] == "running"

    def broken(index: Any, t_submit: int, msg: Any, k: int = 0) -> None:
        raise RuntimeError("worker bug")

    monkeypatch.setattr(runner.workers[0].group, "push", broken)
    with caplog.at_level(logging.ERROR, logger="kmtr_stream.chain"):
        if inline:
            with pytest.raises(KmtrError, match="failed in message #0: RuntimeError: worker bug"):
                runner.submit(Text("a"))
        else:
            runner.submit(Text("a"))
        assert runner.close(timeout=5) is False
    assert runner.state is RunnerState.CRASHED
    assert "connection c3: chain worker 0 crashed" in caplog.text
    with pytest.raises(KmtrError, match="stopped by a crashed worker"):
        runner.submit(Text("b"))


def test_lifecycle_states() -> None:
    runner = ChainRunner(chain(PASS), header=HEADER, emit=lambda m: None)
    assert runner.state is RunnerState.CREATED
    runner.start()
    assert runner.state is RunnerState.RUNNING
    assert runner.close(timeout=5) and runner.state is RunnerState.FINISHED
    runner.abort("client gone after CLOSE")  # nothing was lost: no abort, no ERROR log
    assert runner.state is RunnerState.FINISHED
    busy = ChainRunner(chain(PASS), header=HEADER, emit=lambda m: None)
    busy.start()
    busy.abort("client gone")
    assert busy.state is RunnerState.ABORTED and not busy.close(timeout=1)
    idle = ChainRunner(chain(PASS), header=HEADER, emit=lambda m: None)
    assert idle.close(timeout=1) and idle.state is RunnerState.FINISHED
