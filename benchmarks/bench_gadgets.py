"""Per-readout cost of the k-space gadgets and the post-last-line trigger latency.

Readouts: 8 coils x 256 samples (readout oversampling 2 -> 128), 128 ky lines
per slice buffer, called directly through ``process()`` as the chain runtime
does. Prints medians in microseconds for each backend available here
(NumPy always; CuPy when a CUDA device is present).

    .venv/bin/python benchmarks/bench_gadgets.py [--slices 8] [--repeats 3]

On a shared CPU, multi-threaded BLAS spins against other processes (the
per-buffer SVD then takes ~100 ms instead of ~2 ms): compare with
``OPENBLAS_NUM_THREADS=1`` set; the header line names the setting used.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from typing import Any

import ismrmrd
import ismrmrd.xsd
import numpy as np

from gadgets.coil_compression import CoilCompressionGadget
from gadgets.noise_prewhitening import NoisePrewhiteningGadget
from gadgets.remove_oversampling import RemoveOversamplingGadget
from gadgets.slice_buffer import SliceBufferGadget
from kmtr_stream.backend import cupy_available, synchronize
from kmtr_stream.chain.gadget import ChainContext, Gadget
from kmtr_stream.messages import SliceKSpace

COILS, NX_OS, NX, NKY = 8, 256, 128, 128


def header_xml(n_slices: int) -> str:
    def lim(name: str, n: int, c: int = 0) -> str:
        body = f"<minimum>0</minimum><maximum>{n - 1}</maximum><center>{c}</center>"
        return f"<{name}>{body}</{name}>"

    return (
        '<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
        "<experimentalConditions><H1resonanceFrequency_Hz>63500000</H1resonanceFrequency_Hz>"
        "</experimentalConditions><encoding><encodedSpace><matrixSize>"
        f"<x>{NX_OS}</x><y>{NKY}</y><z>1</z></matrixSize><fieldOfView_mm><x>640</x><y>320</y>"
        f"<z>8</z></fieldOfView_mm></encodedSpace><reconSpace><matrixSize><x>{NX}</x><y>{NKY}</y>"
        "<z>1</z></matrixSize><fieldOfView_mm><x>320</x><y>320</y><z>8</z></fieldOfView_mm>"
        f"</reconSpace><encodingLimits>{lim('kspace_encoding_step_1', NKY, NKY // 2)}"
        f"{lim('slice', n_slices)}</encodingLimits><trajectory>cartesian</trajectory>"
        "</encoding></ismrmrdHeader>"
    )


def readouts(rng: np.random.Generator, n_slices: int, n_samples: int) -> list[ismrmrd.Acquisition]:
    """``n_slices`` fully sampled slices; the central 16 lines flagged calibration."""
    out = []
    for s in range(n_slices):
        for ky in range(NKY):
            d = rng.standard_normal((COILS, 2 * n_samples)).view(np.complex128)
            acq = ismrmrd.Acquisition.from_array(d.astype(np.complex64))
            acq.idx.kspace_encode_step_1, acq.idx.slice = ky, s
            acq.sample_time_us = 2.0
            if NKY // 2 - 8 <= ky < NKY // 2 + 8:
                acq.set_flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
            if ky == NKY - 1:
                acq.set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
            out.append(acq)
    return out


def noise(rng: np.random.Generator) -> list[ismrmrd.Acquisition]:
    out = []
    for _ in range(4):
        d = rng.standard_normal((COILS, 2 * NX_OS)).view(np.complex128).astype(np.complex64)
        acq = ismrmrd.Acquisition.from_array(d)
        acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        acq.sample_time_us = 4.0
        out.append(acq)
    return out


def per_call_us(g: Gadget, msgs: list[Any]) -> tuple[list[float], list[Any]]:
    """Wall time of each ``process()`` call (output drained) and all outputs."""
    times, outs = [], []
    for m in msgs:
        t0 = time.perf_counter_ns()
        got = list(g.process(m))
        times.append((time.perf_counter_ns() - t0) / 1e3)
        outs.extend(got)
    return times, outs


def bench(backend: str, n_slices: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    header = ismrmrd.xsd.CreateFromDocument(header_xml(n_slices))
    logging.getLogger("kmtr_stream.bench").setLevel(logging.ERROR)
    log = logging.getLogger("kmtr_stream.bench")
    ctx = ChainContext.from_header(header, backend=backend, logger=log)
    raw = readouts(rng, n_slices, NX_OS)
    rows: dict[str, list[float]] = {}
    latency: dict[str, list[float]] = {}
    for _ in range(repeats):
        nw = NoisePrewhiteningGadget("nw", NoisePrewhiteningGadget.Params(), ctx)
        ro = RemoveOversamplingGadget("ro", RemoveOversamplingGadget.Params(), ctx)
        cc = CoilCompressionGadget("cc", CoilCompressionGadget.Params(n_virtual_coils=4), ctx)
        for m in noise(rng):
            list(nw.process(m))
        t, white = per_call_us(nw, raw)
        rows.setdefault("noise_prewhitening", []).extend(t)
        t, cropped = per_call_us(ro, white)
        rows.setdefault("remove_oversampling", []).extend(t)
        t, virt = per_call_us(cc, cropped)
        # The first calls only hold lines until the matrix is known: time the steady state.
        rows.setdefault("coil_compression (8->4)", []).extend(t[NKY:])
        for label, params, lines in (
            ("slice_buffer last_in_slice, 4 coils", {}, virt),
            ("slice_buffer last_in_slice, 8c, virtual_coils=4",
             {"virtual_coils": 4, "calibration_lines": 16}, cropped),
            ("slice_buffer coverage=0.5, 8 coils",
             {"trigger": "coverage", "coverage_fraction": 0.5}, cropped),
        ):
            sb = SliceBufferGadget("sb", SliceBufferGadget.Params(**params), ctx)
            for m in lines:
                t0 = time.perf_counter_ns()
                got = list(sb.process(m))
                synchronize(backend)
                t1 = time.perf_counter_ns()
                if any(isinstance(x, SliceKSpace) for x in got):
                    latency.setdefault(label, []).append((t1 - t0) / 1e3)
                else:
                    rows.setdefault(label + " (insert)", []).append((t1 - t0) / 1e3)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"backend: {backend} (OPENBLAS_NUM_THREADS={threads})")
    print(f"readouts: {COILS} coils x {NX_OS} samples -> {NX}, "
          f"{NKY} ky lines, {n_slices} slices x {repeats} repeats")
    print(f"{'per-readout cost (median us)':<58}{'median':>9}{'p90':>9}{'n':>7}")
    for name, v in rows.items():
        p90 = float(np.percentile(v, 90))
        print(f"  {name:<56.56}{statistics.median(v):>9.1f}{p90:>9.1f}{len(v):>7}")
    print(f"{'trigger latency: last readout in -> SliceKSpace out (us)':<58}")
    for name, v in latency.items():
        p90 = float(np.percentile(v, 90))
        print(f"  {name:<56.56}{statistics.median(v):>9.1f}{p90:>9.1f}{len(v):>7}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    backends = ["numpy"] + (["cupy"] if cupy_available() else [])
    for b in backends:
        bench(b, args.slices, args.repeats)
        print()


if __name__ == "__main__":
    main()
