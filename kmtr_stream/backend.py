"""One array backend: CuPy when a CUDA device is present, NumPy otherwise.

The backend is chosen once per chain (``resolve_backend``) and every gadget
gets its array module from ``array_module``. Data crosses to torch through
DLPack (``to_torch``), so CuPy arrays reach the network without a host copy.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np

from kmtr_stream.errors import ConfigError

BACKENDS = ("auto", "numpy", "cupy")


@functools.lru_cache(maxsize=1)
def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return bool(cupy.cuda.runtime.getDeviceCount() > 0)
    except Exception:
        return False


def resolve_backend(name: str) -> str:
    """Turn a configured backend name into the one used: "numpy" or "cupy".

    Raises:
        ConfigError: unknown name, or "cupy" asked for where none is usable.
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown array backend {name!r} (expected one of {BACKENDS})")
    if name == "auto":
        return "cupy" if cupy_available() else "numpy"
    if name == "cupy" and not cupy_available():
        raise ConfigError("backend 'cupy' requested but CuPy or a CUDA device is not available")
    return name


def array_module(name: str) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) of a resolved backend name."""
    if resolve_backend(name) == "cupy":
        import cupy

        return cupy
    return np


def to_numpy(array: Any) -> np.ndarray:
    """Host NumPy copy of a NumPy or CuPy array (no copy for NumPy input)."""
    if hasattr(array, "get"):
        return np.asarray(array.get())
    return np.asarray(array)


def to_torch(array: Any) -> Any:
    """Zero-copy torch tensor view of a NumPy or CuPy array through DLPack."""
    import torch

    if isinstance(array, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(array))
    return torch.from_dlpack(array)


def synchronize(name: str) -> None:
    """Wait for queued device work of backend ``name`` (no-op for NumPy), e.g. before timing."""
    if name == "cupy":
        import cupy

        cupy.cuda.get_current_stream().synchronize()
