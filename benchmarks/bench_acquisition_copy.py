"""Per-readout cost of copying a header and building a new Acquisition: ismrmrd's own calls
against ``kmtr_stream.acquisition_fast`` (what the prewhitening, oversampling and coil
compression gadgets do per readout), interleaved, medians of the repeats (prints figures).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_acquisition_copy.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import ismrmrd
import numpy as np

from kmtr_stream.acquisition_fast import copy_head, new_acquisition


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--n", type=int, default=4000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((8, 128)) + 1j * rng.standard_normal((8, 128))).astype(np.complex64)
    acq = ismrmrd.Acquisition.from_array(data)
    traj = np.zeros((128, 0), np.float32)

    def stock() -> None:
        ismrmrd.Acquisition(acq.getHead(), data=data, trajectory=traj)

    def fast() -> None:
        new_acquisition(copy_head(acq), data, traj)

    times: dict[str, list[float]] = {"ismrmrd": [], "fast": []}
    for _ in range(args.repeats):
        for name, fn in (("ismrmrd", stock), ("fast", fast)):
            t0 = time.perf_counter()
            for _ in range(args.n):
                fn()
            times[name].append((time.perf_counter() - t0) / args.n * 1e6)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"header copy + new Acquisition, {args.repeats} interleaved repeats of {args.n}: "
          f"ismrmrd {med['ismrmrd']:.1f} us, fast {med['fast']:.1f} us "
          f"({med['ismrmrd'] / med['fast']:.1f}x)")


if __name__ == "__main__":
    main()
