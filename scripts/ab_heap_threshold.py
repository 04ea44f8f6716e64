"""A/B of glibc heap settings in the serving process (``process_tuning.HEAP_SETTINGS``):
latency and peak RSS.

Chain servers side by side, each its own process: k-MTR and recon-then-analyze, each
with glibc's own behaviour, with a fixed 128 KiB mmap threshold, and with 2 arenas.
Paced rounds (1 scanner) are interleaved across all of them; then 16 concurrent
unpaced scanners per server give its peak RSS.

    OMP_NUM_THREADS=1 python scripts/ab_heap_threshold.py [--subjects 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

import numpy as np

from kmtr_stream.bench.run import CHAINS, ChainServer, simulate, stream_all
from simulator.config import SimConfig

#: label -> (KMTR_MMAP_THRESHOLD_BYTES, KMTR_ARENA_MAX); "0" keeps glibc's own.
VARIANTS = {"glibc": ("0", "0"), "mmap128k": ("131072", "0"), "arenas2": ("0", "2")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--scanners", type=int, default=16)
    args = ap.parse_args()
    cfg = SimConfig()
    scans = simulate(args.subjects, 0, cfg)
    servers: dict[str, ChainServer] = {}
    for chain in ("kmtr", "recon_then_analyze"):
        for label, (mmap, arenas) in VARIANTS.items():
            # inherited by the spawned server, which applies them at start
            os.environ["KMTR_MMAP_THRESHOLD_BYTES"], os.environ["KMTR_ARENA_MAX"] = mmap, arenas
            servers[f"{chain}/{label}"] = ChainServer.start(chain, CHAINS[chain], 1)
    post: dict[str, list[float]] = {k: [] for k in servers}
    try:
        for _ in range(args.rounds):
            for name, srv in servers.items():
                for fig in stream_all(srv.endpoint, scans, cfg, pace=True, scanners=1):
                    post[name] += fig["post_last_line_ms"]
        fast = replace(cfg, tr_ms=0.5)
        print(f"{'server':28}{'paced median ms':>16}{'p99 ms':>9}{'peak RSS MB':>13}"
              f"{'per conn MB':>13}")
        for name, srv in servers.items():
            figs = stream_all(srv.endpoint, scans[:1], fast, pace=False, scanners=args.scanners)
            failed = sum(1 for f in figs if f.get("failed"))
            peak = srv.stats()["peak_rss_mb"]
            per = (peak - srv.idle_rss_mb) / args.scanners
            med, p99 = np.percentile(post[name], [50, 99])
            print(f"{name:28}{med:16.2f}{p99:9.2f}{peak:13.1f}{per:13.1f}"
                  + (f"  ({failed} failed)" if failed else ""), flush=True)
    finally:
        for srv in servers.values():
            srv.stop()


if __name__ == "__main__":
    main()
