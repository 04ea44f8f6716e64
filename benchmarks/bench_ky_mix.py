"""Cost of the streaming ky-mix: one full-size update per line against lines folded in
batches (``KyMixAccumulator(flush_every=...)``), on the shipped k-MTR frontend, 8 coils,
one 4x slice; interleaved repeats, medians (prints figures).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ky_mix.py [--repeats 9] [--batch 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kmtr_stream.model.io import read_weights
from kmtr_stream.model.kspace_encoder import KyMixAccumulator
from kmtr_stream.process_tuning import set_threads


def _slice(
    fe: torch.nn.Module, lines: torch.Tensor, ky: list[int], every: int
) -> tuple[float, float]:
    """Microseconds per line while lines arrive, and milliseconds of the read after the last."""
    acc = KyMixAccumulator(fe, lines.shape[1], flush_every=every)
    t0 = time.perf_counter()
    for line, k in zip(lines, ky, strict=True):
        acc.add_line(line, k)
    t1 = time.perf_counter()
    acc.sum  # noqa: B018 - the read after the last line folds in what is waiting
    t2 = time.perf_counter()
    return (t1 - t0) / len(ky) * 1e6, (t2 - t1) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    set_threads(1)
    fe = read_weights("default").net.frontend
    n_ky = fe.wy.shape[-2]
    ky = sorted(set(range(0, n_ky, 4)) | set(range(n_ky // 2 - 6, n_ky // 2 + 6)))
    lines = torch.randn(len(ky), 8, fe.wx.shape[-2], dtype=torch.complex64)
    res: dict[int, list[tuple[float, float]]] = {1: [], args.batch: []}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for every in res:
                res[every].append(_slice(fe, lines, ky, every))
    for every, r in res.items():
        print(f"flush_every={every}: {statistics.median(x for x, _ in r):.1f} us per line, "
              f"{statistics.median(y for _, y in r):.3f} ms after the last of {len(ky)} lines")


if __name__ == "__main__":
    main()
