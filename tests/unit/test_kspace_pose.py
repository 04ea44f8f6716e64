"""kspace.pose: exact shifts and turns against a NumPy reference; the shift augmentation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kmtr_stream.kspace.pose import mirror_centred, rot90_centred, shift_image, shift_kspace
from kmtr_stream.training.config import TrainSettings
from kmtr_stream.training.data import _FIELDS, CachedCohort, make_batch


def _centred_ifft(k: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1))), axes=(-2, -1))


def _centred_fft(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1))), axes=(-2, -1))


@pytest.mark.parametrize("shape,dy,dx", [((16, 16), 3, -5), ((15, 12), -4, 7), ((9, 9), 8, 1)])
def test_shift_is_the_circular_shift_of_the_image(shape: tuple[int, int], dy: int, dx: int) -> None:
    rng = np.random.default_rng(0)
    img = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    k = _centred_fft(img)
    got = _centred_ifft(shift_kspace(k, dy, dx))
    np.testing.assert_allclose(np.abs(got), np.abs(shift_image(img, dy, dx)), atol=1e-5)


@pytest.mark.parametrize("n", [8, 9])
def test_quarter_turn_of_the_spectrum_is_the_quarter_turn_of_the_image(n: int) -> None:
    rng = np.random.default_rng(1)
    img = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    for turns in range(4):
        got = _centred_ifft(rot90_centred(_centred_fft(img), turns))
        np.testing.assert_allclose(got, rot90_centred(img, turns), atol=1e-9)


@pytest.mark.parametrize("shape", [(8, 8), (9, 9), (6, 7)])
def test_mirrored_spectrum_is_the_mirrored_image(shape: tuple[int, int]) -> None:
    """Complex images too: no conjugation, the readout axis reversed about DC."""
    rng = np.random.default_rng(4)
    img = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    n = shape[-1]
    # the mirror: column j holds the image at x = -(j - c), c = n // 2 (circularly)
    ref = np.stack([img[:, (2 * (n // 2) - j) % n] for j in range(n)], axis=-1)
    np.testing.assert_array_equal(mirror_centred(img), ref)
    np.testing.assert_allclose(_centred_ifft(mirror_centred(_centred_fft(img))), ref, atol=1e-9)
    np.testing.assert_array_equal(mirror_centred(mirror_centred(img)), img)


def _tiny_cohort(root: Path, n: int = 4) -> CachedCohort:
    rng = np.random.default_rng(2)
    shape = (n, 2, 2, 2, 16, 16)
    k = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    arrays = {
        "kspace": k,
        "image": np.abs(_centred_ifft(k)).sum(axis=3).astype(np.float32),
        "labels": rng.integers(0, 4, (n, 2, 2, 16, 16)).astype(np.uint8),
        "phenotypes": rng.standard_normal((n, 9)).astype(np.float32),
        "diagnosis": np.arange(n, dtype=np.int64) % 5,
        "voxel_size_mm": np.ones((n, 3), np.float32),
    }
    assert set(arrays) == set(_FIELDS)
    for name, a in arrays.items():
        np.save(root / f"{name}.npy", a)
    return CachedCohort(root)


def test_shift_augmentation_moves_kspace_image_and_labels_together(tmp_path: Path) -> None:
    cohort = _tiny_cohort(tmp_path)
    idx = np.arange(4)
    zero, one = np.zeros(9, np.float32), np.ones(9, np.float32)
    plain = TrainSettings(batch_size=4, partial_prob=0.0)
    moved = replace(plain, shift_prob=1.0, shift_max_px=5)
    a = make_batch(cohort, idx, np.random.default_rng(3), plain, zero, one)
    b = make_batch(cohort, idx, np.random.default_rng(3), moved, zero, one)
    assert bool((a.mask == b.mask).all())  # masks are drawn first: the same in both
    n_moved = 0
    for i in range(4):
        la, lb = a.labels[i].numpy(), b.labels[i].numpy()
        found = [
            (dy, dx) for dy in range(-5, 6) for dx in range(-5, 6)
            if np.array_equal(shift_image(la, dy, dx), lb)
        ]
        assert len(found) == 1, "labels moved by one integer shift"
        dy, dx = found[0]
        n_moved += (dy, dx) != (0, 0)
        np.testing.assert_allclose(
            b.kspace[i].numpy(), shift_kspace(a.kspace[i].numpy(), dy, dx), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_array_equal(b.image[i].numpy(), shift_image(a.image[i].numpy(), dy, dx))
    assert n_moved >= 3


def test_flip_augmentation_mirrors_kspace_image_and_labels_together(tmp_path: Path) -> None:
    cohort = _tiny_cohort(tmp_path, n=8)
    idx = np.arange(8)
    zero, one = np.zeros(9, np.float32), np.ones(9, np.float32)
    plain = TrainSettings(batch_size=8, partial_prob=0.0)
    a = make_batch(cohort, idx, np.random.default_rng(5), plain, zero, one)
    b = make_batch(cohort, idx, np.random.default_rng(5), replace(plain, flip_prob=0.5), zero, one)
    assert bool((a.mask == b.mask).all())
    flipped = 0
    for i in range(8):
        same = np.array_equal(a.labels[i].numpy(), b.labels[i].numpy())
        if not same:
            flipped += 1
            for name in ("kspace", "image", "labels"):
                np.testing.assert_array_equal(
                    getattr(b, name)[i].numpy(), mirror_centred(getattr(a, name)[i].numpy()))
        else:
            np.testing.assert_array_equal(b.kspace[i].numpy(), a.kspace[i].numpy())
        assert b.diagnosis[i] == a.diagnosis[i]  # a mirrored heart keeps its class
    assert 0 < flipped < 8
