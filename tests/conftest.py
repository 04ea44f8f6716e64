"""Shared pytest fixtures, the GPU marker's skip logic and the hypothesis profiles."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# The suite is a gate: the same examples every run ("ci"). HYPOTHESIS_PROFILE=explore
# draws new ones, to hunt for cases the fixed set misses.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _have_gpu() -> bool:
    try:
        import cupy

        return bool(cupy.cuda.runtime.getDeviceCount() > 0)
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _have_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device and CuPy")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
