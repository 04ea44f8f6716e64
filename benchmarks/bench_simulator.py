"""Simulator throughput at the default size, and a projection for a 42,000-subject cohort.

Prints medians per subject (one process) and the throughput of two worker
processes for: ground truth only, the training item in "ed_es" and "all" mode
(``CohortDataset``), a full scan held in memory (all phases, oversampled
readouts, acquisitions built) and a full scan written to disk (ISMRMRD HDF5 +
sidecars). Also the ed_es item with OpenBLAS' default thread pool versus one
thread per process, side by side.

Usage: ``.venv/bin/python benchmarks/bench_simulator.py [--n 6] [--cohort 42000]``
"""

from __future__ import annotations

import os

# Small per-subject matrices: BLAS thread pools only add contention (measured below).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from simulator.cohort import make_subject
from simulator.config import SimConfig
from simulator.dataset import training_item
from simulator.scan import simulate_scan
from simulator.writer import subject_stem, write_subject

CFG = SimConfig()
OUT = Path(tempfile.mkdtemp(prefix="bench_sim_"))


def job_truth(sid: int) -> int:
    make_subject(sid, 0, CFG)
    return 0


def job_ed_es(sid: int) -> int:
    return int(training_item(sid, 0, CFG, 4, "ed_es")["kspace"].nbytes)


def job_all(sid: int) -> int:
    return int(training_item(sid, 0, CFG, 4, "all")["kspace"].nbytes)


def job_scan(sid: int) -> int:
    scan = simulate_scan(sid, 0, CFG)
    return sum(1 for _ in scan.acquisitions(CFG))


def job_write(sid: int) -> int:
    path = write_subject(sid, 0, CFG, OUT)
    stem = subject_stem(sid)
    return sum(f.stat().st_size for f in OUT.glob(f"{stem}*")) if path.exists() else 0


def per_subject_s(job: Callable[[int], int], ids: list[int]) -> tuple[float, float]:
    """Median wall and CPU seconds per subject in this process (first call warms up).

    CPU time is the steadier figure on a machine shared with other work.
    """
    job(10_000_000 + ids[0])
    wall, cpu = [], []
    for sid in ids:
        t, c = time.perf_counter(), time.process_time()
        job(sid)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def two_process_rate(job: Callable[[int], int], ids: list[int]) -> float:
    """Subjects per second with two worker processes."""
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(job, [20_000_000, 20_000_001]))   # start-up and warm-up
        t = time.perf_counter()
        list(pool.map(job, ids))
        return len(ids) / (time.perf_counter() - t)


def blas_threads_item_s(threads: str | None, n: int) -> float:
    """Median ed_es item time in a fresh process with OPENBLAS_NUM_THREADS=threads."""
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = threads
    code = (
        "import time, statistics\n"
        "from simulator.dataset import training_item\nfrom simulator.config import SimConfig\n"
        "c = SimConfig(); training_item(999, 0, c)\nts = []\n"
        f"for i in range({n}):\n"
        "    t = time.perf_counter(); training_item(i, 0, c); ts.append(time.perf_counter() - t)\n"
        "print(statistics.median(ts))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=6, help="subjects per measurement")
    parser.add_argument("--cohort", type=int, default=42_000, help="cohort size to project")
    args = parser.parse_args()
    ids = list(range(args.n))
    print(f"default size: {CFG.n_phases} phases x {CFG.n_slices} slices x {CFG.n_coils} coils x "
          f"{CFG.ny} ky x {CFG.nx_os} kx (R={CFG.accel}); {os.cpu_count()} CPUs; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    rows = [("ground truth only", job_truth), ("training item ed_es", job_ed_es),
            ("training item all phases", job_all), ("full scan in memory", job_scan),
            ("full scan written (HDF5+sidecars)", job_write)]
    rates: dict[str, float] = {}
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'mode':36s} {'wall s/subj':>11s} {'CPU s/subj':>11s} {'subj/s 2 procs':>15s}")
    for name, job in rows:
        wall, cpu = per_subject_s(job, ids)
        two = two_process_rate(job, [100 + i for i in range(2 * args.n)])
        rates[name] = two
        print(f"{name:36s} {wall:11.3f} {cpu:11.3f} {two:15.2f}")
    disk = statistics.median(job_write(200 + i) for i in range(3))
    item = training_item(300, 0, CFG)
    item_bytes = sum(v.nbytes for v in item.values())
    print(f"disk per subject: {disk / 1e6:.1f} MB (HDF5 + sidecars); ed_es cache item "
          f"{item_bytes / 1e6:.2f} MB uncompressed")
    projections = (("full scan written (HDF5+sidecars)", disk), ("training item ed_es", item_bytes))
    for name, b in projections:
        hours = args.cohort / rates[name] / 3600.0
        print(f"projected {args.cohort} subjects, {name}: {hours:.2f} h on 2 processes "
              f"(measured rate), {args.cohort * b / 1e9:.0f} GB")
    one_thread = blas_threads_item_s("1", args.n)
    default = blas_threads_item_s(None, args.n)
    print(f"ed_es item, OpenBLAS default threads: {default:.3f} s; one thread: {one_thread:.3f} s "
          f"(ratio {default / one_thread:.1f}x)")
    for f in OUT.glob("*"):
        f.unlink()
    OUT.rmdir()
    _ = np


if __name__ == "__main__":
    main()
