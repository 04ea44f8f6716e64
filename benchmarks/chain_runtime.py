"""Pass-through throughput of the chain runtime, designs measured side by side.

Prints readouts/s for 8 coils x 256 samples acquisitions through:
  * direct: the chain's stage execution called in a plain loop (no threads; the floor),
  * inline: ChainRunner, all gadgets in one worker (the default),
  * per-stage: ChainRunner with ``new_thread = true`` on every gadget,
  * queue.Queue: a thread per stage with ``queue.Queue`` hand-offs (the textbook design).

Run: ``.venv/bin/python benchmarks/chain_runtime.py [--n 20000] [--gadgets 3] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import queue
import statistics
import threading
import time
from typing import Any

import ismrmrd
import numpy as np

from kmtr_stream.chain.config import parse_chain_config
from kmtr_stream.chain.gadget import StreamHeader
from kmtr_stream.chain.runtime import ChainRunner
from kmtr_stream.chain.stages import Stage, StageGroup

HEADER = StreamHeader.parse(
    '<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
    "<experimentalConditions><H1resonanceFrequency_Hz>63500000</H1resonanceFrequency_Hz>"
    "</experimentalConditions><encoding>"
    "<encodedSpace><matrixSize><x>256</x><y>256</y><z>1</z></matrixSize><fieldOfView_mm>"
    "<x>400</x><y>200</y><z>8</z></fieldOfView_mm></encodedSpace><reconSpace><matrixSize>"
    "<x>128</x><y>256</y><z>1</z></matrixSize><fieldOfView_mm><x>200</x><y>200</y><z>8</z>"
    "</fieldOfView_mm></reconSpace><encodingLimits/><trajectory>cartesian</trajectory>"
    "</encoding></ismrmrdHeader>"
)


def make_acquisitions(n: int) -> list[ismrmrd.Acquisition]:
    """``n`` acquisitions of data ``(8 coils, 256 samples)`` complex64 (shared payload)."""
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((8, 256)) + 1j * rng.standard_normal((8, 256))).astype(np.complex64)
    return [ismrmrd.Acquisition.from_array(data) for _ in range(n)]


def config(n_gadgets: int, per_stage: bool) -> str:
    text = '[chain]\nname = "bench"\nbackend = "numpy"\nqueue_size = 1024\n'
    for i in range(n_gadgets):
        text += f'[[gadgets]]\nid = "p{i}"\ntype = "passthrough"\n'
        if per_stage and i > 0:
            text += "new_thread = true\n"
    return text


def run_runner(msgs: list[Any], n_gadgets: int, per_stage: bool) -> float:
    spec = parse_chain_config(config(n_gadgets, per_stage), "bench.toml")
    count = [0]

    def emit(m: Any) -> None:
        count[0] += 1

    runner = ChainRunner(spec, emit=emit, header=HEADER, connection_id="bench")
    runner.start()
    t0 = time.perf_counter()
    for m in msgs:
        runner.submit(m)
    runner.close()
    dt = time.perf_counter() - t0
    assert count[0] == len(msgs)
    return len(msgs) / dt


def run_direct(msgs: list[Any], n_gadgets: int) -> float:
    """The chain's own stage execution (``StageGroup``) called in a plain loop."""
    from gadgets.passthrough import PassthroughGadget
    from kmtr_stream.chain.gadget import ChainContext, NoParams

    ctx = ChainContext.for_stream(HEADER)
    stages = [Stage(PassthroughGadget(f"p{i}", NoParams(), ctx)) for i in range(n_gadgets)]
    out: list[Any] = []
    group = StageGroup(stages, lambda i, t, m: out.append(m))
    t0 = time.perf_counter()
    for i, m in enumerate(msgs):
        group.push(i, 0, m)
    dt = time.perf_counter() - t0
    assert len(out) == len(msgs)
    return len(msgs) / dt


def run_queue_queue(msgs: list[Any], n_gadgets: int) -> float:
    queues: list[queue.Queue[Any]] = [queue.Queue(1024) for _ in range(n_gadgets + 1)]
    stop = object()

    def stage(i: int) -> None:
        qin, qout = queues[i], queues[i + 1]
        while True:
            m = qin.get()
            qout.put(m)
            if m is stop:
                return

    threads = [threading.Thread(target=stage, args=(i,), daemon=True) for i in range(n_gadgets)]
    for t in threads:
        t.start()
    done = [0]

    def sink() -> None:
        while queues[-1].get() is not stop:
            done[0] += 1

    s = threading.Thread(target=sink, daemon=True)
    s.start()
    t0 = time.perf_counter()
    for m in msgs:
        queues[0].put(m)
    queues[0].put(stop)
    s.join()
    dt = time.perf_counter() - t0
    assert done[0] == len(msgs)
    return len(msgs) / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20000, help="acquisitions per run")
    ap.add_argument("--gadgets", type=int, default=3, help="passthrough gadgets in the chain")
    ap.add_argument("--repeats", type=int, default=3, help="runs per design (median reported)")
    args = ap.parse_args()
    msgs = make_acquisitions(args.n)
    designs = {
        "direct (no threads)": lambda: run_direct(msgs, args.gadgets),
        "ChainRunner inline (default)": lambda: run_runner(msgs, args.gadgets, per_stage=False),
        "ChainRunner new_thread per gadget": lambda: run_runner(msgs, args.gadgets, per_stage=True),
        "queue.Queue thread per stage": lambda: run_queue_queue(msgs, args.gadgets),
    }
    print(f"{args.n} acquisitions (8 coils x 256 samples), {args.gadgets} passthrough gadgets")
    results: dict[str, list[float]] = {}
    for _ in range(args.repeats):  # interleave designs so machine load hits all alike
        for name, fn in designs.items():
            results.setdefault(name, []).append(fn())
    for name, rates in results.items():
        med = statistics.median(rates)
        print(f"  {name:36s} {med:12,.0f} readouts/s  ({1e6 / med:6.2f} us/readout)")


if __name__ == "__main__":
    main()
