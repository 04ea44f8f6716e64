"""Server RSS before, at the peak of, and after a burst of clients (does memory come back?).

Starts ``kmtr-stream serve`` (pass-through chain, ZeroMQ) as a child, samples
its resident memory every 0.2 s, runs ``--clients`` concurrent clients that
each stream ``--rounds`` subjects of 8-coil readouts (one of them never reads
its replies until the others are done), then waits ``--settle-s`` and prints
RSS before / peak / after in MiB.

    nice -n 19 .venv/bin/python scripts/memory_baseline.py --clients 16
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kmtr_stream.messages import Close, XmlHeader  # noqa: E402
from kmtr_stream.transport.client import StreamClient  # noqa: E402
from tests.integration.conftest import make_acquisitions, make_header_xml  # noqa: E402


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--settle-s", type=float, default=5.0)
    args = p.parse_args()
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "kmtr-stream"), "serve",
         str(ROOT / "configs" / "passthrough.toml"), "--zmq", "tcp://127.0.0.1:0",
         "--mrd", "none"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.stderr is not None
    endpoint = ""
    for line in proc.stderr:
        m = re.search(r"listening on (tcp://\S+)", line)
        if m:
            endpoint = m.group(1)
            break
    threading.Thread(target=lambda: [None for _ in proc.stderr or []], daemon=True).start()
    time.sleep(1.0)
    before = rss_mib(proc.pid)
    samples = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_mib(proc.pid))
            time.sleep(0.2)

    xml = make_header_xml(n_coils=8, n_kx=256, n_ky=128, n_slices=10)
    acqs = make_acquisitions(n_coils=8, n_kx=256, n_ky=128, n_slices=10)
    others_done = threading.Event()

    def client(k: int) -> None:
        for _ in range(args.rounds):
            with StreamClient.connect(endpoint) as c:
                c.send(XmlHeader(xml))
                c.send_many(acqs)
                c.send(Close())
                if k == 0:
                    others_done.wait(120)  # replies pile up in its outbox meanwhile
                c.receive_until_close(120)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    others_done.set()
    threads[0].join()
    time.sleep(args.settle_s)
    after = rss_mib(proc.pid)
    done.set()
    proc.terminate()
    proc.wait(30)
    if proc.stderr is not None:
        proc.stderr.close()
    mb = len(acqs) * 8 * 256 * 8 / (1 << 20)
    print(f"{args.clients} clients x {args.rounds} streams of {len(acqs)} readouts "
          f"({mb:.0f} MiB of samples each); one client reads nothing until the others finish")
    print(f"server RSS MiB: before {before:.0f}  peak {max(samples):.0f}  "
          f"after {after:.0f} ({args.settle_s:g} s after the last client left)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
