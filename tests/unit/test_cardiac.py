"""kmtr_stream.cardiac: the one ED/ES rule, areas and volumes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from kmtr_stream.cardiac import (
    areas_mm2,
    choose_ed_es,
    end_systolic_phase,
    lv_cavity_by_phase,
    phenotypes_from_volumes,
    slice_offset_mm,
    spacing_from_offsets,
)
from kmtr_stream.conventions import Label


def _r(phase: int, lv_pixels: int) -> SimpleNamespace:
    labels = np.zeros((4, 8), np.int16)
    labels.flat[:lv_pixels] = int(Label.LV_CAVITY)
    return SimpleNamespace(phase=phase, labels=labels)


def test_es_is_the_smallest_other_phase_with_ties_to_the_lower_phase() -> None:
    assert end_systolic_phase({0: 9, 1: 4, 2: 4, 3: 6}, ed_phase=0) == 1
    assert end_systolic_phase({0: 1, 1: 4, 2: 3}, ed_phase=0) == 2  # never ED itself
    assert end_systolic_phase({2: 5, 0: 3}, ed_phase=2) == 0
    assert end_systolic_phase({3: 5}, ed_phase=3) == 3  # alone: ED
    with pytest.raises(ValueError):
        end_systolic_phase({}, ed_phase=0)


def test_choose_ed_es_sums_lv_over_slices() -> None:
    results = [_r(0, 10), _r(0, 10), _r(1, 3), _r(1, 12), _r(2, 7), _r(2, 7)]
    assert lv_cavity_by_phase(results) == {0: 20, 1: 15, 2: 14}
    assert choose_ed_es(results) == (0, 2)
    assert choose_ed_es(results, ed_phase=2) == (2, 1)


def test_volume_phenotypes_use_the_same_es_rule() -> None:
    lv = np.array([100.0, 60.0, 40.0, 80.0])
    rv = np.array([90.0, 70.0, 50.0, 60.0])
    myo = np.array([50.0, 52.0, 55.0, 51.0])
    ph = phenotypes_from_volumes(lv, rv, myo, ed_phase=3)
    assert ph["LVEDV"] == 80.0 and ph["LVESV"] == 40.0 and ph["RVESV"] == 50.0
    assert phenotypes_from_volumes(lv, rv, myo)["LVEDV"] == 100.0  # ED by volume when not given


def test_areas_in_mm2() -> None:
    labels = np.zeros((4, 4), np.int16)
    labels[0, :3] = int(Label.LV_CAVITY)
    labels[1, :2] = int(Label.RV_CAVITY)
    labels[2, 0] = int(Label.LV_MYOCARDIUM)
    assert areas_mm2(labels, (1.5, 2.0, 8.0)) == {"LV": 9.0, "RV": 6.0, "MYO": 3.0}


def test_slice_offset_is_position_along_the_normal() -> None:
    import ismrmrd

    h = ismrmrd.AcquisitionHeader()
    h.slice_dir[:] = (0.0, 0.6, 0.8)
    h.position[:] = (5.0, 10.0, 20.0)
    assert slice_offset_mm(h) == pytest.approx(0.6 * 10.0 + 0.8 * 20.0)
    h.slice_dir[:] = (0.0, 0.0, 0.0)  # header that does not fill in the normal
    assert slice_offset_mm(h) is None
    assert slice_offset_mm(None) is None


def test_spacing_from_offsets() -> None:
    assert spacing_from_offsets({0: 5.0, 1: 15.0, 2: 25.0}) == pytest.approx(10.0)
    # descending positions, a missing slice counter in between
    assert spacing_from_offsets({0: 30.0, 1: 22.0, 3: 6.0}) == pytest.approx(8.0)
    assert spacing_from_offsets({0: 5.0}) is None
    assert spacing_from_offsets({0: 0.0, 1: 0.0}) is None
