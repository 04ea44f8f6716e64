"""Array-module inference without importing CuPy where it is absent."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def get_array_module(*arrays: Any) -> Any:
    """``cupy`` if any argument is a CuPy array, else ``numpy``.

    Mirrors ``cupy.get_array_module`` but never imports CuPy: an array can
    only be a CuPy array when CuPy was already imported by whoever made it.
    """
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return np
