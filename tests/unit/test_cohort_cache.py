"""The cached cohort is the same whether one process or several workers simulate it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from kmtr_stream.training.config import load_config
from kmtr_stream.training.data import _FIELDS, build_cohort

ROOT = Path(__file__).resolve().parents[2]


def test_workers_build_the_same_cohort_as_one_process(tmp_path: Path) -> None:
    data = load_config(ROOT / "configs" / "train_tiny.toml").data
    one = build_cohort("val", 5, replace(data, cache_dir=str(tmp_path / "a"), workers=1),
                       progress=False)
    two = build_cohort("val", 5, replace(data, cache_dir=str(tmp_path / "b"), workers=2),
                       progress=False)
    for name in _FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(one, name)),
                                      np.asarray(getattr(two, name)), err_msg=name)
    assert np.abs(np.asarray(two.kspace)[-1]).sum() > 0  # the last worker's subject is there
