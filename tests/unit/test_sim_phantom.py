"""Phantom and cohort: determinism, label-derived ground truth, ACDC class rules."""

from __future__ import annotations

import numpy as np
import pytest

from kmtr_stream.cardiac import phenotypes_from_labels, structure_volumes_ml
from kmtr_stream.conventions import CLASSES, Label
from simulator.cohort import make_subject
from simulator.config import SimConfig
from simulator.disease import rule_violations
from simulator.motion import contraction_curve
from simulator.phantom import render_image, render_labels

SMALL = SimConfig(nx=56, ny=48, fov_x_mm=175.0, fov_y_mm=150.0, n_phases=6, n_coils=6, n_calib=8)


def test_same_id_and_seed_same_subject() -> None:
    a, b = make_subject(11, 4, SMALL), make_subject(11, 4, SMALL)
    assert a.params == b.params and a.labels.tobytes() == b.labels.tobytes()
    assert make_subject(12, 4, SMALL).params != a.params


@pytest.mark.parametrize("diagnosis", range(len(CLASSES)))
def test_class_rules_hold_on_ten_subjects(diagnosis: int) -> None:
    for sid in range(10):
        s = make_subject(1000 + sid, 0, SMALL, diagnosis=diagnosis)
        assert s.diagnosis == diagnosis
        assert (
            rule_violations(
                diagnosis, s.phenotypes, s.params.bsa_m2, s.max_wall_mm, s.params.infarct
            )
            == []
        )
        ph, bsa = s.phenotypes, s.params.bsa_m2
        # The ACDC definitions themselves, restated independently.
        if CLASSES[diagnosis] == "NOR":
            assert ph["LVEF"] > 50 and ph["LVEDV"] / bsa < 100
        elif CLASSES[diagnosis] == "DCM":
            assert ph["LVEDV"] / bsa > 100 and ph["LVEF"] < 40
        elif CLASSES[diagnosis] == "HCM":
            assert ph["LVM"] / bsa > 110 and s.max_wall_mm > 15 and ph["LVEF"] > 55
        elif CLASSES[diagnosis] == "MINF":
            assert ph["LVEF"] < 40 and s.params.infarct
        else:
            assert ph["RVEDV"] / bsa > 110 or ph["RVEF"] < 40


def test_volumes_from_labels_equal_phenotypes() -> None:
    s = make_subject(3, 9, SMALL)
    assert s.labels.shape == (SMALL.n_phases, SMALL.n_slices, SMALL.ny, SMALL.nx)
    vol = structure_volumes_ml(s.labels, SMALL.voxel_size_mm)
    voxel_ml = 3.125 * 3.125 * 10.0 / 1000.0
    assert vol["LV"][0] == pytest.approx((s.labels[0] == Label.LV_CAVITY).sum() * voxel_ml)
    assert s.es_phase == int(np.argmin(vol["LV"]))
    assert s.phenotypes == phenotypes_from_labels(
        s.labels, SMALL.voxel_size_mm, ed_phase=0, es_phase=s.es_phase
    )
    assert s.phenotypes["LVEDV"] == pytest.approx(vol["LV"][0])
    assert s.phenotypes["LVM"] == pytest.approx(vol["MYO"][0] * 1.05)
    assert s.phenotypes["RVESV"] == pytest.approx(vol["RV"][s.es_phase])
    # Labels for a subset of phases are the same rasterisation.
    np.testing.assert_array_equal(
        render_labels(s.params, SMALL, [s.es_phase])[0], s.labels[s.es_phase]
    )


def test_anatomy_contrast_and_motion() -> None:
    s = make_subject(5, 1, SMALL)
    img = np.abs(render_image(s.params, SMALL, [0, s.es_phase]))
    lab = s.labels[[0, s.es_phase]]
    blood = np.median(img[lab == Label.LV_CAVITY])
    myo = np.median(img[lab == Label.LV_MYOCARDIUM])
    assert blood > 2.0 * myo > 0
    # Anti-aliasing: edge pixels take intermediate values.
    edge = (lab == Label.LV_MYOCARDIUM) & np.roll(lab == Label.LV_CAVITY, 1, axis=-1)
    assert np.any((img[edge] > 1.1 * myo) & (img[edge] < 0.9 * blood))
    # Wall thickening and cavity shrinkage from ED to ES in mid-ventricular slices.
    mid = SMALL.n_slices // 2
    assert (lab[1, mid] == Label.LV_CAVITY).sum() < (lab[0, mid] == Label.LV_CAVITY).sum()
    # Slices taper towards the apex.
    lv_ed = (s.labels[0] >= Label.LV_MYOCARDIUM).sum(axis=(1, 2))
    assert lv_ed[0] > lv_ed[-1] > 0
    # The RV borders the septum: some RV pixel touches LV myocardium.
    rv = s.labels[0] == Label.RV_CAVITY
    myo_mask = s.labels[0] == Label.LV_MYOCARDIUM
    assert np.any(rv & (np.roll(myo_mask, 1, axis=-1) | np.roll(myo_mask, -1, axis=-1)))


def test_contraction_curve() -> None:
    c = contraction_curve(10, 3)
    assert c[0] == 0 and c[3] == 1 and int(np.argmax(c)) == 3
    assert np.all(np.diff(c[:4]) > 0) and np.all(np.diff(c[3:]) < 0)
    with pytest.raises(ValueError):
        contraction_curve(10, 0)


def _ray_lengths_mm(
    mask: np.ndarray, centre: tuple[float, float], step_mm: float = 0.25, n_angles: int = 72
) -> np.ndarray:
    """``(angles,)`` length of ``mask`` (y, x) along rays from ``centre`` (pixels), in mm."""
    t = np.linspace(0.0, 2.0 * np.pi, n_angles, endpoint=False)
    r = np.arange(0.0, 100.0, step_mm) / 3.125  # in pixels
    ys = np.rint(centre[0] + r[None, :] * np.sin(t)[:, None]).astype(int)
    xs = np.rint(centre[1] + r[None, :] * np.cos(t)[:, None]).astype(int)
    inside = (ys >= 0) & (ys < mask.shape[0]) & (xs >= 0) & (xs < mask.shape[1])
    hit = np.zeros(ys.shape, dtype=bool)
    hit[inside] = mask[ys[inside], xs[inside]]
    return np.asarray(hit.sum(axis=1) * step_mm)


def test_hcm_wall_thickness_from_labels() -> None:
    """Some ED segment > 15 mm thick in HCM (none in NOR), measured on the label maps."""
    for sid in range(3):
        s = make_subject(2000 + sid, 0, SMALL, diagnosis=CLASSES.index("HCM"))
        lab = s.labels[0, 1]  # ED, basal slice
        cy, cx = np.argwhere(lab == Label.LV_CAVITY).mean(axis=0)
        assert _ray_lengths_mm(lab == Label.LV_MYOCARDIUM, (cy, cx)).max() > 15.0
        nor = make_subject(2100 + sid, 0, SMALL, diagnosis=CLASSES.index("NOR")).labels[0, 1]
        cy, cx = np.argwhere(nor == Label.LV_CAVITY).mean(axis=0)
        assert _ray_lengths_mm(nor == Label.LV_MYOCARDIUM, (cy, cx)).max() < 15.0


def test_minf_regional_akinesia_from_labels() -> None:
    """MINF: some rays keep their ED cavity length at ES while remote rays shorten."""
    for sid in range(3):
        s = make_subject(3000 + sid, 0, SMALL, diagnosis=CLASSES.index("MINF"))
        mid = SMALL.n_slices // 2
        ed, es = s.labels[0, mid], s.labels[s.es_phase, mid]
        cy, cx = np.argwhere(ed == Label.LV_CAVITY).mean(axis=0)
        ratio = _ray_lengths_mm(es == Label.LV_CAVITY, (cy, cx)) / _ray_lengths_mm(
            ed == Label.LV_CAVITY, (cy, cx)
        )
        assert ratio.max() > 0.9 and np.median(ratio) < ratio.max() - 0.1


def test_class_weights_steer_the_draw() -> None:
    only_dcm = SimConfig(**{**SMALL.__dict__, "class_weights": (0.0, 1.0, 0.0, 0.0, 0.0)})
    assert {make_subject(i, 0, only_dcm).diagnosis for i in range(4)} == {CLASSES.index("DCM")}
    drawn = {make_subject(i, 0, SMALL).diagnosis for i in range(30)}
    assert len(drawn) >= 4  # balanced weights give a mix
