"""Cardiac motion: per-class contraction curves and the base descending towards the apex."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kmtr_stream.cardiac import phenotypes_from_labels
from kmtr_stream.conventions import CLASSES, Label
from simulator.cohort import _solve_lv_contraction, make_subject
from simulator.config import SimConfig
from simulator.disease import MOTION_RANGES, draw_motion
from simulator.motion import contraction_curve
from simulator.phantom import (
    plane_positions_mm,
    render_image,
    render_labels,
    tissue_positions_mm,
)

CFG = SimConfig(n_phases=10, n_slices=6, n_coils=4, supersample=1)
NOR, DCM, HCM = (CLASSES.index(c) for c in ("NOR", "DCM", "HCM"))


@pytest.mark.parametrize("warp", [0.6, 1.0, 1.5])
@pytest.mark.parametrize("early", [0.0, 0.3, 0.85])
def test_curve_keeps_ed_and_es_as_its_extremes(warp: float, early: float) -> None:
    c = contraction_curve(20, 7, warp, early)
    assert c[0] == 0.0 and c[7] == 1.0
    assert np.all(c[1:] > 0.0) and np.all(np.delete(c, 7) < 1.0)
    assert np.all(np.diff(c[:8]) > 0) and np.all(np.diff(c[7:]) <= 0)


def test_warp_moves_ejection_earlier_or_later() -> None:
    fast, plain, slow = (contraction_curve(30, 10, w) for w in (0.6, 1.0, 1.5))
    assert np.all(fast[1:10] > plain[1:10]) and np.all(slow[1:10] < plain[1:10])
    assert np.array_equal(fast[10:], plain[10:])  # diastole untouched


def test_early_filling_fraction_is_the_diastasis_level() -> None:
    n, es, e = 40, 10, 0.7
    c = contraction_curve(n, es, 1.0, e)
    y = (np.arange(n) - es) / (n - es)
    diastasis = (y >= 0.4) & (y <= 0.75)
    np.testing.assert_allclose(c[diastasis], 1.0 - e, atol=1e-12)


@pytest.mark.parametrize(("warp", "early"), [(0.0, 0.5), (1.0, 1.0), (1.0, -0.1)])
def test_curve_rejects_bad_shapes(warp: float, early: float) -> None:
    with pytest.raises(ValueError, match=r"ejection_warp|early_filling"):
        contraction_curve(10, 3, warp, early)


def test_tissue_positions_descend_the_base_and_keep_the_apex() -> None:
    p = replace(make_subject(1, 0, CFG, diagnosis=NOR).params, base_descent_mm=12.0)
    z = np.asarray(CFG.slice_positions_mm())
    zeta = tissue_positions_mm(p, CFG, np.array([0.0, 1.0]))
    np.testing.assert_allclose(zeta[0], z)
    # The plane at the descended base cuts the ED base; the apex does not move.
    base_plane = replace(CFG, n_slices=1)
    moved = tissue_positions_mm(p, base_plane, np.array([1.0]))[0, 0]
    assert moved == pytest.approx((5.0 - 12.0) / (1.0 - 12.0 / p.lv_length_mm))
    assert np.all(zeta[1] < z)
    apex = (p.lv_length_mm - 12.0) / (1.0 - 12.0 / p.lv_length_mm)
    assert apex == pytest.approx(p.lv_length_mm)


def test_base_descent_changes_systole_only() -> None:
    s = make_subject(2, 0, CFG, diagnosis=NOR)
    p0 = s.params
    p1 = replace(p0, base_descent_mm=14.0)
    es = p0.es_phase
    lab0, lab1 = render_labels(p0, CFG, [0, es]), render_labels(p1, CFG, [0, es])
    img0, img1 = render_image(p0, CFG, [0, es]), render_image(p1, CFG, [0, es])
    np.testing.assert_array_equal(lab0[0], lab1[0])  # end-diastole untouched
    np.testing.assert_array_equal(img0[0], img1[0])
    # End-systole: the basal plane now cuts the atria, rendered but labelled background.
    assert (lab0[1, 0] == Label.LV_CAVITY).any() and not lab1[1, 0].any()
    cavity_ed = lab0[0, 0] == Label.LV_CAVITY
    atrium = np.abs(img1[1, 0][cavity_ed]).mean()
    assert atrium > 0.9 * np.abs(img0[0, 0][cavity_ed]).mean()  # a blood pool, not tissue
    # Every plane below cuts tissue from nearer the base: the ventricle empties more.
    lv0 = (lab0[1] == Label.LV_CAVITY).sum()
    lv1 = (lab1[1] == Label.LV_CAVITY).sum()
    assert lv1 < lv0


def test_plane_offset_moves_the_stack_along_the_long_axis() -> None:
    p = make_subject(5, 0, CFG, diagnosis=NOR).params
    step = replace(p, plane_offset_mm=CFG.slice_spacing_mm)
    np.testing.assert_allclose(
        plane_positions_mm(step, CFG), np.asarray(CFG.slice_positions_mm()) + CFG.slice_spacing_mm
    )
    lab, moved = render_labels(p, CFG), render_labels(step, CFG)
    np.testing.assert_array_equal(moved[:, :-1], lab[:, 1:])  # one plane further to the apex


def test_lv_contraction_is_solved_with_the_descent() -> None:
    p = replace(make_subject(4, 0, CFG, diagnosis=NOR).params, base_descent_mm=12.0)
    for target in (45.0, 62.0):
        q = replace(p, lv_contraction=_solve_lv_contraction(p, target, CFG))
        lab = render_labels(q, CFG)
        phen = phenotypes_from_labels(lab, CFG.voxel_size_mm, ed_phase=0)
        assert phen["LVEF"] == pytest.approx(target, abs=1.5)
        # The radial estimate alone would overshoot: the descent ejects blood too.
        plain = phenotypes_from_labels(render_labels(p, CFG), CFG.voxel_size_mm, ed_phase=0)
        assert plain["LVEF"] > phenotypes_from_labels(
            render_labels(replace(p, base_descent_mm=0.0), CFG), CFG.voxel_size_mm, ed_phase=0
        )["LVEF"]


def test_class_motion_ranges_order_the_classes() -> None:
    rng = np.random.default_rng(0)
    draws = {c: [draw_motion(c, rng) for _ in range(50)] for c in MOTION_RANGES}
    assert max(d["base_descent_mm"] for d in draws[DCM]) < min(
        d["base_descent_mm"] for d in draws[NOR]
    )
    assert max(d["ejection_warp"] for d in draws[HCM]) < 1.0 < min(
        d["ejection_warp"] for d in draws[DCM]
    )
    assert max(d["early_filling"] for d in draws[HCM]) < min(
        d["early_filling"] for d in draws[DCM]
    )
    with pytest.raises(ValueError, match="diagnosis"):
        draw_motion(len(CLASSES), rng)


@pytest.mark.parametrize("mode", ["train", "shifted"])
def test_randomized_subjects_move_and_keep_their_ground_truth(mode: str) -> None:
    cfg = replace(CFG, randomize=mode)
    for sid in range(4):
        s = make_subject(sid, 0, cfg)
        lo, hi = MOTION_RANGES[s.diagnosis][0]
        assert lo <= s.params.base_descent_mm <= hi
        # The stored labels are the rendered ones, and ES is their smallest LV.
        np.testing.assert_array_equal(s.labels, render_labels(s.params, cfg))
        lv = (s.labels == Label.LV_CAVITY).sum(axis=(1, 2, 3))
        assert s.es_phase == int(np.argmin(lv)) == s.params.es_phase
