"""The streaming-process settings the commands apply."""

from __future__ import annotations

import gc

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
