"""Temperature-scaled class probabilities of the disease head (pure NumPy).

The temperature is fitted in training (``training.calibration``) and ships
with the weights; serving and evaluation apply it here.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``(n, classes)`` logits divided by ``temperature``."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))
