"""Process-wide settings for streaming processes (the ``kmtr-stream`` commands call this).

Kept out of the library classes on purpose: they change the whole process,
which only its owner should decide. Benchmarks call it too, so that their
figures are those of ``kmtr-stream serve`` and ``kmtr-stream send``.
"""

from __future__ import annotations

import ctypes
import gc
import os

#: Container allocations between young-generation collections (CPython's default is 700).
GC_GEN0_THRESHOLD = 50_000

#: glibc heap settings that ``kmtr-stream`` commands apply: name -> (mallopt parameter
#: number from malloc.h, value). Environment ``KMTR_<name>`` overrides a value; 0 keeps
#: glibc's own behaviour.
HEAP_SETTINGS: dict[str, tuple[int, int]] = {
    # Allocations of at least this many bytes get a mapping of their own, handed back to
    # the system when freed (glibc's own threshold rises to the largest block freed).
    # Left to glibc: a fixed 128 KiB threshold halved the 16-scanner peak but doubled the
    # paced post-last-line median (every activation mapped and faulted in afresh).
    "MMAP_THRESHOLD_BYTES": (-3, 0),
    # Heaps that threads allocate from (glibc's own: up to 8 per core). Two: with 16
    # scanners the k-MTR chain's peak RSS went from 1,241 to 838 MB (recon 739 -> 693)
    # at the same paced latency (scripts/ab_heap_threshold.py, docs/figures/ab_heap.txt).
    "ARENA_MAX": (-8, 2),
}


def limit_heap_retention() -> dict[str, int]:
    """Apply ``HEAP_SETTINGS``; returns those set (an empty dict without glibc).

    With glibc's defaults, each connection's thread gets a heap of its own for its
    buffers (raw slice buffers, ky-mixes, network activations), and each heap keeps what
    its peak needed; the k-MTR chain, which works on every line as it arrives in that
    thread, held twice recon's peak with 16 scanners.
    """
    wanted = {name: int(os.environ.get(f"KMTR_{name}", value))
              for name, (_, value) in HEAP_SETTINGS.items()}
    if not any(v > 0 for v in wanted.values()):
        return {}
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return {}  # not glibc (musl, macOS): nothing to change
    return {name: v for name, v in wanted.items()
            if v > 0 and mallopt(HEAP_SETTINGS[name][0], v) == 1}


def tune_streaming_process() -> None:
    """Fewer garbage-collector passes on the per-readout hot path, and fewer heaps for
    the connections' threads (``limit_heap_retention``).

    Decoding a readout allocates a handful of short-lived container objects
    that never form cycles, so with CPython's default the young-generation
    collector runs every ~150 readouts and costs ~8 % of the end-to-end
    throughput of the pass-through chain (benchmarks/bench_throughput.py,
    measured side by side). Objects that exist at start-up (modules, models)
    are frozen out of collections altogether. Cycles are still collected,
    only in larger batches.
    """
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
    limit_heap_retention()


def set_threads(n: int) -> None:
    """torch intra-op threads and OpenMP/BLAS threads of this process and its children.

    Left alone, torch runs one intra-op thread per core against the server's I/O and
    chain threads; on 2 cores with another job running that gave 5-30x latency
    outliers. Serving, the demo and the bench set it explicitly (default 1).
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already fixed by earlier parallel work in this process
