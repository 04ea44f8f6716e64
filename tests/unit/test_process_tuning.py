"""The streaming-process settings the commands apply."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

from kmtr_stream.process_tuning import GC_GEN0_THRESHOLD, tune_streaming_process


def test_tuning_raises_gen0_threshold_and_freezes_startup_objects() -> None:
    before = gc.get_threshold()
    try:
        tune_streaming_process()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
        # Cycles are still collected.
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


_HEAP_PROBE = """
import numpy as np
from kmtr_stream.process_tuning import limit_heap_retention
print(limit_heap_retention().get("MMAP_THRESHOLD_BYTES", 0))
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
small, big = [], []
np.ones(300_000 // 8).sum()  # one freed block: glibc's own threshold rises above it
for i in range(300):  # 300 KB buffers between small long-lived ones: a fragmented heap
    big.append(np.ones(300_000 // 8))
    small.append(np.ones(1_000))
base = rss()
del big
print(base - rss())
"""


def _python(code: str, **env: str) -> str:
    """Stdout of ``code`` in a fresh interpreter: the environment without KMTR_ settings,
    plus ``env`` (heap settings apply once, at start)."""
    plain = {k: v for k, v in os.environ.items() if not k.startswith("KMTR_")}
    return subprocess.run([sys.executable, "-c", code], env={**plain, **env}, check=True,
                          capture_output=True, text=True).stdout.strip()


def _freed_mb(threshold: str) -> tuple[int, float]:
    out = _python(_HEAP_PROBE, KMTR_MMAP_THRESHOLD_BYTES=threshold, KMTR_ARENA_MAX="0").split()
    return int(out[0]), float(out[1])


def test_freed_buffers_go_back_to_the_system_with_the_fixed_threshold() -> None:
    """300 freed 300 KB buffers among live small ones: glibc's dynamic threshold keeps
    them in the heap; a fixed 128 KiB one returns their ~86 MB."""
    set_to, freed = _freed_mb("131072")
    kept_to, kept = _freed_mb("0")
    assert set_to == 131072 and kept_to == 0
    assert freed > 60.0 and kept < 10.0, (freed, kept)


def test_heap_settings_come_from_the_environment_and_zero_keeps_glibcs() -> None:
    code = "from kmtr_stream.process_tuning import limit_heap_retention as f; print(f())"
    assert _python(code) == "{'ARENA_MAX': 2}"  # the defaults
    assert _python(code, KMTR_ARENA_MAX="4", KMTR_MMAP_THRESHOLD_BYTES="262144") == (
        "{'MMAP_THRESHOLD_BYTES': 262144, 'ARENA_MAX': 4}")
    assert _python(code, KMTR_ARENA_MAX="0") == "{}"
