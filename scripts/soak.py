"""Soak test: N paced scanners (and some faulty ones) stream to a live server for M minutes.

Starts ``kmtr-stream serve`` (pass-through chain, ZeroMQ) as a child process,
then runs every scanner in its own thread. A paced scanner streams subjects
of ``--slices`` slices x 14 readouts, one readout every ``--line-ms``; the
pass-through chain returns every readout, so each slice's last readout
coming back is that slice's result. A faulty scanner cycles through faults:
a truncated frame, a NaN readout, vanishing mid-stream, and never reading its
replies for a while. Printed at the end: slices sent, results received,
errors, lost (well-behaved scanners' slices without a result; must be 0),
duplicates, the server's RSS at start/peak/end (sampled every second, and
"after 1 min") and post-last-line latency percentiles of the paced scanners.

    nice -n 19 .venv/bin/python scripts/soak.py --minutes 10 --paced 4 --faulty 1
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kmtr_stream.codec.zmq_frames import encode_frames  # noqa: E402
from kmtr_stream.codec.zmq_packed import decode_message  # noqa: E402
from kmtr_stream.messages import Close, ErrorReport, XmlHeader  # noqa: E402
from tests.integration.conftest import make_acquisitions, make_header_xml  # noqa: E402

N_KY = 24
LINES_PER_SLICE = 14  # make_acquisitions: every 2nd line plus the centre


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.received = 0
        self.errors = 0
        self.lost = 0
        self.duplicates = 0
        self.faulty_lost = 0
        self.latency_ms: list[float] = []


def scanner(k: int, endpoint: str, until: float, args: Any, stats: Stats, faulty: bool) -> None:
    stream_no = 0
    while time.monotonic() < until:
        stream_no += 1
        fault = ("truncated", "nan", "vanish", "no_read")[stream_no % 4] if faulty else None
        one_stream(k * 1000 + stream_no, endpoint, args, stats, fault)


def one_stream(seed: int, endpoint: str, args: Any, stats: Stats, fault: str | None) -> None:
    """One scanner stream (header, slices, CLOSE), with ``fault`` injected when set."""
    faulty = fault is not None
    xml = make_header_xml(n_coils=8, n_kx=128, n_ky=N_KY, n_slices=args.slices)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvhwm = 100_000
    sock.connect(endpoint)
    acqs = make_acquisitions(n_coils=8, n_kx=128, n_ky=N_KY, n_slices=args.slices, seed=seed)
    for i, a in enumerate(acqs):
        a.scan_counter = i
    if fault == "nan":
        acqs[3].data[:] = np.nan
    sock.send_multipart(encode_frames(XmlHeader(xml)))
    sent_at: dict[int, float] = {}
    got: Counter[int] = Counter()
    state = {"errors": 0, "closed": 0}
    cut = len(acqs) // 2
    read_after = time.monotonic() + 5.0

    def take(timeout_ms: int) -> None:
        if fault == "no_read" and time.monotonic() < read_after:
            time.sleep(timeout_ms / 1000)
            return
        while sock.poll(timeout_ms):
            timeout_ms = 0
            msgs, bad = decode_message(sock.recv_multipart(copy=False))
            now = time.monotonic()
            state["errors"] += bad is not None
            for m in msgs:
                if isinstance(m, ErrorReport):
                    state["errors"] += 1
                elif isinstance(m, Close):
                    state["closed"] = 1
                elif hasattr(m, "scan_counter"):
                    sc = int(m.scan_counter)
                    got[sc] += 1
                    if sc in sent_at and (sc + 1) % LINES_PER_SLICE == 0 and not faulty:
                        with stats.lock:
                            stats.latency_ms.append(1000 * (now - sent_at[sc]))

    vanished = False
    for i, a in enumerate(acqs):
        if fault == "truncated" and i == cut:
            frames = [bytes(f) for f in encode_frames(a)]
            sock.send_multipart([*frames[:-1], frames[-1][:-5]])
            continue
        if fault == "vanish" and i == cut:
            vanished = True
            break
        sock.send_multipart(encode_frames(a), copy=False)
        sent_at[i] = time.monotonic()
        due = sent_at[i] + args.line_ms / 1000
        while (left := due - time.monotonic()) > 0:  # the next line is due: read meanwhile
            take(max(1, int(left * 1000)))
    if not vanished:
        sock.send_multipart(encode_frames(Close()))
        deadline = time.monotonic() + 30.0
        while not state["closed"] and time.monotonic() < deadline:
            take(100)
    sock.close(0)
    slices = [sc for sc in sent_at if (sc + 1) % LINES_PER_SLICE == 0]
    lost = sum(1 for sc in slices if got[sc] == 0)
    with stats.lock:
        stats.sent += len(slices)
        stats.received += sum(1 for sc in slices if got[sc] > 0)
        stats.duplicates += sum(1 for n in got.values() if n > 1)
        stats.errors += state["errors"]
        if faulty:
            stats.faulty_lost += lost
        else:
            stats.lost += lost + (0 if state["closed"] else 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--paced", type=int, default=4)
    p.add_argument("--faulty", type=int, default=1)
    p.add_argument("--slices", type=int, default=10)
    p.add_argument("--line-ms", type=float, default=5.0)
    args = p.parse_args()
    exe = ROOT / ".venv" / "bin" / "kmtr-stream"
    endpoint = ""
    log_lines = 0
    proc = subprocess.Popen(
        [str(exe), "serve", str(ROOT / "configs" / "passthrough.toml"),
         "--zmq", "tcp://127.0.0.1:0", "--mrd", "none",
         "--limit", "outbox_stall_timeout_s=3"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"listening on (tcp://\S+)", line)
        if m:
            endpoint = m.group(1)
            break
    counts: Counter[str] = Counter()

    def drain_log() -> None:
        nonlocal log_lines
        assert proc.stderr is not None
        for line in proc.stderr:
            log_lines += 1
            for level in ("ERROR", "WARNING"):
                if f" {level} " in line:
                    counts[level] += 1

    threading.Thread(target=drain_log, daemon=True).start()
    stats = Stats()
    rss = [rss_of(proc.pid)]
    t0 = time.monotonic()
    until = t0 + 60 * args.minutes
    threads = [threading.Thread(target=scanner, args=(k, endpoint, until, args, stats, False))
               for k in range(args.paced)]
    threads += [threading.Thread(target=scanner, args=(100 + k, endpoint, until, args, stats,
                                                       True)) for k in range(args.faulty)]
    for t in threads:
        t.start()
    rss_1min = 0
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        rss.append(rss_of(proc.pid))
        if not rss_1min and time.monotonic() - t0 >= 60:
            rss_1min = rss[-1]
    time.sleep(2.0)
    end = rss_of(proc.pid)
    proc.terminate()
    code = proc.wait(30)
    if proc.stderr is not None:
        proc.stderr.close()
    lat = np.array(stats.latency_ms) if stats.latency_ms else np.zeros(1)
    mib = 1 << 20
    print(f"soak: {args.paced} paced + {args.faulty} faulty scanners, {args.minutes:g} min, "
          f"{args.slices} slices x {LINES_PER_SLICE} lines, a line every {args.line_ms:g} ms")
    print(f"slices sent {stats.sent}  results received {stats.received}  errors {stats.errors}"
          f"  lost {stats.lost}  duplicates {stats.duplicates}"
          f"  (faulty scanners' slices without result: {stats.faulty_lost})")
    print(f"server RSS MiB: start {rss[0] / mib:.0f}  after 1 min {rss_1min / mib:.0f}  "
          f"peak {max(rss) / mib:.0f}  end {end / mib:.0f}")
    print("post-last-line latency ms (paced): "
          + "  ".join(f"p{q} {np.percentile(lat, q):.2f}" for q in (50, 90, 99, 100)))
    print(f"server log: {counts['ERROR']} ERROR, {counts['WARNING']} WARNING lines; "
          f"exit code after SIGTERM {code}")
    return 0 if stats.lost == 0 and stats.duplicates == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
