"""Per-readout cost of a chain's gadgets in process (no sockets): one simulated subject's
readouts pushed through the chain, repeated, median microseconds per readout (prints figures).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_chain_per_readout.py \\
        [configs/kmtr_streaming.toml] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def subject_through_chain(config: str | Path) -> tuple[Callable[[Any], float], int]:
    """One simulated subject's readouts and ``config``'s chain: returns ``once(trace)``,
    which pushes every readout through fresh gadgets (``trace``: a TraceWriter or None)
    and gives the microseconds per readout, and the number of readouts."""
    from kmtr_stream.chain import registry
    from kmtr_stream.chain.config import load_chain_config
    from kmtr_stream.chain.gadget import ChainContext, StreamHeader
    from kmtr_stream.chain.stages import Stage, StageGroup
    from simulator.config import SimConfig
    from simulator.dataset import subject_id_for
    from simulator.scan import simulate_scan

    cfg = SimConfig()
    scan = simulate_scan(subject_id_for("test", 0), 2026, cfg, diagnosis=0)
    acqs = list(scan.acquisitions(cfg))
    header = StreamHeader.parse(scan.xml(cfg))
    spec = load_chain_config(config)

    def once(trace: Any = None) -> float:
        ctx = ChainContext.for_stream(header)
        gadgets = [registry.lookup(g.type_name)(g.id, g.params, ctx) for g in spec.gadgets]
        group = StageGroup([Stage(g) for g in gadgets], lambda i, t, m: None, trace=trace)
        t0 = time.perf_counter()
        for i, a in enumerate(acqs):
            group.push(i, time.perf_counter_ns(), a)
        group.flush()
        if trace is not None:
            trace.close()
        return (time.perf_counter() - t0) / len(acqs) * 1e6

    return once, len(acqs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs" / "kmtr_streaming.toml"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from kmtr_stream.process_tuning import set_threads

    set_threads(1)
    once, n = subject_through_chain(args.config)
    once(None)  # warm-up: model load, first allocations
    runs = [once(None) for _ in range(args.repeats)]
    print(f"{n} readouts through {Path(args.config).name}'s gadgets, "
          f"{args.repeats} repeats: median {statistics.median(runs):.1f} us/readout "
          f"({', '.join(f'{x:.0f}' for x in runs)})")


if __name__ == "__main__":
    main()
