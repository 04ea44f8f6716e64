"""Cost of leaving the trace on: the default k-MTR chain's per-readout stages with and
without a TraceWriter, interleaved repeats, medians (prints figures).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_trace_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from kmtr_stream.chain import registry
    from kmtr_stream.chain.config import load_chain_config
    from kmtr_stream.chain.gadget import ChainContext, StreamHeader
    from kmtr_stream.chain.stages import Stage, StageGroup
    from kmtr_stream.chain.tracing import TraceWriter
    from kmtr_stream.process_tuning import set_threads
    from simulator.config import SimConfig
    from simulator.dataset import subject_id_for
    from simulator.scan import simulate_scan

    set_threads(1)
    cfg = SimConfig()
    scan = simulate_scan(subject_id_for("test", 0), 2026, cfg, diagnosis=0)
    acqs = list(scan.acquisitions(cfg))
    header = StreamHeader.parse(scan.xml(cfg))
    spec = load_chain_config(ROOT / "configs" / "kmtr.toml")
    tmp = Path(tempfile.mkdtemp())

    def once(trace: bool) -> float:
        ctx = ChainContext.for_stream(header)
        gadgets = [registry.lookup(g.type_name)(g.id, g.params, ctx) for g in spec.gadgets]
        writer = TraceWriter(tmp / "t.jsonl", "bench") if trace else None
        group = StageGroup([Stage(g) for g in gadgets], lambda i, t, m: None, trace=writer)
        t0 = time.perf_counter()
        for i, a in enumerate(acqs):
            group.push(i, time.perf_counter_ns(), a)
        group.flush()
        if writer is not None:
            writer.close()
        return (time.perf_counter() - t0) / len(acqs) * 1e6

    once(False)
    off, on = [], []
    for _ in range(args.repeats):
        off.append(once(False))
        on.append(once(True))
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"{len(acqs)} readouts through configs/kmtr.toml's gadgets, {args.repeats} interleaved "
          f"repeats: {m_off:.1f} us/readout without trace, {m_on:.1f} us with "
          f"({m_on - m_off:+.1f} us, {m_on / m_off - 1:+.1%})")
    print("without:", ", ".join(f"{x:.1f}" for x in off))
    print("with:   ", ", ".join(f"{x:.1f}" for x in on))


if __name__ == "__main__":
    main()
