"""Post-last-line trunk on CPU: torch's generic ops against the trunk's faster exact ones.

Times, on the shipped k-MTR trunk and one 64 x 64 slice (batch 1, as a lone scanner
gives), each replaced op alone and the whole trunk plus label map, the generic way
(``F.interpolate``, ``F.conv2d`` for the dilated context convolutions, ``argmax`` over
the class axis) against the trunk's own (``upsample2x``, ``DilatedConv2d`` through
oneDNN, ``seg_labels``); interleaved repeats, medians. Prints the label maps' agreement
and the largest logit difference too.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_trunk_ops.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.nn import functional as F

from kmtr_stream.model.io import read_weights
from kmtr_stream.model.trunk import UNetTrunk, seg_labels, upsample2x
from kmtr_stream.process_tuning import set_threads


def generic_forward(trunk: UNetTrunk, x: torch.Tensor) -> torch.Tensor:
    """The trunk's logits with torch's generic ops (the reference)."""
    skips = []
    for i, block in enumerate(trunk.down):
        if i:
            x = F.max_pool2d(x, 2)
        x = block(x)
        skips.append(x)
    if trunk.context is not None:
        h = x
        for layer in trunk.context.body:
            h = F.conv2d(h, layer.weight, layer.bias, layer.stride, layer.padding,
                         layer.dilation) if isinstance(layer, torch.nn.Conv2d) else layer(h)
        x = skips[-1] = x + trunk.context.out(h)
    y = skips[-1]
    for block, skip in zip(trunk.up, reversed(skips[:-1]), strict=True):
        y = block(torch.cat((F.interpolate(y, scale_factor=2.0, mode="nearest"), skip), dim=1))
    assert trunk.seg is not None
    return trunk.seg(y)


def _us(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args()
    set_threads(1)
    trunk = read_weights("default").net.trunk
    c0 = trunk.down[0][0].in_channels
    x = torch.randn(1, c0, 64, 64)
    assert trunk.context is not None
    ctx = trunk.context.body[0]
    h = torch.randn(1, ctx.in_channels, 16, 16)
    up = torch.randn(1, 16, 32, 32)
    logits = torch.randn(1, 4, 64, 64)
    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "dilated 3x3 conv, 32 ch at 16 x 16": (
            lambda: F.conv2d(h, ctx.weight, ctx.bias, ctx.stride, ctx.padding, ctx.dilation),
            lambda: ctx(h)),
        "2x nearest upsampling, 16 ch at 32 x 32": (
            lambda: F.interpolate(up, scale_factor=2.0, mode="nearest"), lambda: upsample2x(up)),
        "label map of 4 x 64 x 64 logits": (
            lambda: logits.argmax(dim=1), lambda: seg_labels(logits)),
        "trunk + label map": (
            lambda: generic_forward(trunk, x).argmax(dim=1), lambda: seg_labels(trunk(x)[0])),
    }
    res: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in pairs}
    with torch.inference_mode():
        ref, new = generic_forward(trunk, x), trunk(x)[0]
        print(f"largest logit difference {float((ref - new).abs().max()):.2e}; label maps "
              f"equal: {bool(torch.equal(ref.argmax(dim=1), seg_labels(new)))}")
        for a, b in pairs.values():
            _us(a, 20), _us(b, 20)
        for _ in range(10):
            for k, (a, b) in pairs.items():
                res[k][0].extend(_us(a, args.repeats // 10))
                res[k][1].extend(_us(b, args.repeats // 10))
    for k, (a, b) in res.items():
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{k:40s} generic {ma:8.1f} us   trunk's {mb:8.1f} us   ratio {mb / ma:.2f}")


if __name__ == "__main__":
    main()
