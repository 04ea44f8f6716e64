"""CohortDataset: API shapes and dtypes, determinism, split disjointness, caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kmtr_stream.cardiac import phenotypes_from_labels
from kmtr_stream.errors import ConfigError
from simulator.config import SimConfig
from simulator.dataset import CohortDataset, subject_id_for

# Same 3.125 mm pixels and slice coverage as the default (class rules need it), fewer pixels.
SMALL = SimConfig(nx=56, ny=48, fov_x_mm=175.0, fov_y_mm=150.0, n_phases=6, n_coils=6, n_calib=8)


def test_item_shapes_and_dtypes() -> None:
    ds = CohortDataset(n_subjects=3, seed=1, config=SMALL, n_virtual_coils=3, phases="ed_es")
    item = ds[0]
    assert item["kspace"].shape == (2, 8, 3, 48, 56) and item["kspace"].dtype == torch.complex64
    assert item["image"].shape == (2, 8, 48, 56) and item["image"].dtype == torch.float32
    assert item["labels"].shape == (2, 8, 48, 56) and item["labels"].dtype == torch.int64
    assert item["phenotypes"].shape == (9,) and item["phenotypes"].dtype == torch.float32
    assert item["diagnosis"].shape == () and item["diagnosis"].dtype == torch.int64
    assert item["phases"][0] == 0 and 0 < int(item["phases"][1]) < SMALL.n_phases
    assert item["voxel_size_mm"].tolist() == pytest.approx(list(SMALL.voxel_size_mm))
    assert set(np.unique(item["labels"].numpy())) <= {0, 1, 2, 3}


def test_normalisation_and_image_consistency() -> None:
    item = CohortDataset(n_subjects=1, seed=2, config=SMALL, n_virtual_coils=4)[0]
    k = item["kspace"].numpy()
    c = slice(SMALL.ny // 2 - SMALL.n_calib // 2, SMALL.ny // 2 + SMALL.n_calib // 2)
    # Every (phase, slice) buffer: RMS of virtual coil 0 over the calibration region is 1.
    rms = np.sqrt(np.mean(np.abs(k[:, :, 0, c, :]) ** 2, axis=(-2, -1)))
    np.testing.assert_allclose(rms, 1.0, rtol=1e-4)
    ref = np.sqrt(
        (
            np.abs(
                np.fft.fftshift(
                    np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
                )
            )
            ** 2
        ).sum(2)
    )
    np.testing.assert_allclose(item["image"].numpy(), ref, rtol=1e-4, atol=1e-5)


def test_phenotypes_match_all_phase_labels() -> None:
    item = CohortDataset(n_subjects=1, seed=3, config=SMALL, phases="all")[0]
    assert item["kspace"].shape[0] == SMALL.n_phases
    phen = phenotypes_from_labels(item["labels"].numpy(), SMALL.voxel_size_mm, ed_phase=0)
    np.testing.assert_allclose(item["phenotypes"].numpy(), list(phen.values()), rtol=1e-5)


def test_deterministic_and_splits_disjoint() -> None:
    a = CohortDataset(n_subjects=2, seed=5, config=SMALL)[1]
    b = CohortDataset(n_subjects=2, seed=5, config=SMALL)[1]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    other = CohortDataset(n_subjects=2, seed=6, config=SMALL)[1]
    assert not torch.equal(a["kspace"], other["kspace"])
    ids = {s: {subject_id_for(s, i) for i in range(1000)} for s in ("train", "val", "test")}
    assert (
        not ids["train"] & ids["val"]
        and not ids["train"] & ids["test"]
        and not ids["val"] & ids["test"]
    )


def test_cache_round_trip(tmp_path: Path) -> None:
    ds = CohortDataset(n_subjects=3, seed=7, config=SMALL, cache_dir=tmp_path, shard_size=2)
    assert ds.build_cache(progress=False) == 2
    assert len(list(tmp_path.glob("*.npz"))) == 2
    fresh = CohortDataset(n_subjects=3, seed=7, config=SMALL)
    for i in (2, 0):
        cached, direct = ds[i], fresh[i]
        for key in cached:
            assert torch.equal(cached[key], direct[key]), key


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        CohortDataset(n_subjects=1, split="holdout")
    with pytest.raises(ConfigError):
        CohortDataset(n_subjects=1, phases="some")
    with pytest.raises(IndexError):
        CohortDataset(n_subjects=1, config=SMALL)[1]
