"""Cost of leaving the trace on: the default k-MTR chain's per-readout stages with and
without a TraceWriter, interleaved repeats, medians (prints figures).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_trace_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from bench_chain_per_readout import subject_through_chain

    from kmtr_stream.chain.tracing import TraceWriter
    from kmtr_stream.process_tuning import set_threads

    set_threads(1)
    run, n = subject_through_chain(ROOT / "configs" / "kmtr.toml")
    tmp = Path(tempfile.mkdtemp())

    def once(trace: bool) -> float:
        return run(TraceWriter(tmp / "t.jsonl", "bench") if trace else None)

    once(False)
    off, on = [], []
    for _ in range(args.repeats):
        off.append(once(False))
        on.append(once(True))
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"{n} readouts through configs/kmtr.toml's gadgets, {args.repeats} interleaved "
          f"repeats: {m_off:.1f} us/readout without trace, {m_on:.1f} us with "
          f"({m_on - m_off:+.1f} us, {m_on / m_off - 1:+.1%})")
    print("without:", ", ".join(f"{x:.1f}" for x in off))
    print("with:   ", ", ".join(f"{x:.1f}" for x in on))


if __name__ == "__main__":
    main()
