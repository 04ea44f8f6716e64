"""The robustness check's broken inputs: each one's truth is the anatomy in its image."""

from __future__ import annotations

import numpy as np

from kmtr_stream.evaluation.robustness import broken_inputs


def _cohort() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two subjects, one slice, 3 coils: an asymmetric label map imaged through k-space."""
    rng = np.random.default_rng(0)
    n = 32
    labels = np.zeros((2, 1, n, n), np.int64)
    labels[:, :, 4:10, 6:26] = 1  # a wide bar off the diagonal: transposing moves it
    labels[:, :, 14:22, 18:24] = 3
    intensity = np.array([0.1, 1.0, 0.5, 2.0])[labels]
    coils = rng.uniform(0.5, 1.5, (3, 1, 1)) * np.exp(1j * rng.uniform(0, 6, (3, 1, 1)))
    img = intensity[:, :, None] * coils
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img, axes=(-2, -1))), axes=(-2, -1))
    return k.astype(np.complex64), labels, intensity


def _rss(k: np.ndarray) -> np.ndarray:
    img = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1))), axes=(-2, -1))
    return np.sqrt((np.abs(img) ** 2).sum(axis=-3))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_wrong_orientation_truth_is_the_transposed_anatomy() -> None:
    k, labels, image = _cohort()
    kb, lb, ib = broken_inputs(k, labels, image)["wrong_orientation"]
    seen = _rss(kb)
    # The image of the swapped k-space shows the transposed anatomy: its own truth ...
    assert _corr(seen, np.array([0.1, 1.0, 0.5, 2.0])[lb]) > 0.99
    assert _corr(seen, ib) > 0.99
    # ... and not the original label map, against which a correct result would fail.
    assert _corr(seen, np.array([0.1, 1.0, 0.5, 2.0])[labels]) < 0.5
    np.testing.assert_array_equal(lb, np.swapaxes(labels, -1, -2))


def test_noise_only_keeps_the_subjects_truth_and_shows_nothing_of_it() -> None:
    k, labels, image = _cohort()
    kb, lb, _ = broken_inputs(k, labels, image)["noise_only"]
    assert kb.shape == k.shape and kb.dtype == np.complex64
    np.testing.assert_array_equal(lb, labels)
    assert abs(_corr(_rss(kb), image)) < 0.2
