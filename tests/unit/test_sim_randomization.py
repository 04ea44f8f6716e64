"""Domain randomization: each knob changes what it claims, and only that."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kmtr_stream.kspace.pose import rot90_centred
from simulator.anatomy import TISSUE_INTENSITY
from simulator.cohort import make_subject
from simulator.config import SimConfig
from simulator.phantom import render_image, render_labels
from simulator.randomization import randomized_fields
from simulator.scan import scanner_setup

SQUARE = SimConfig(n_phases=4, n_slices=4, n_coils=4, supersample=1)


@pytest.fixture(scope="module")
def subject():  # type: ignore[no-untyped-def]
    return make_subject(3, 0, SQUARE, diagnosis=0)


def test_plain_phantom_is_unchanged_by_the_new_fields(subject) -> None:  # type: ignore[no-untyped-def]
    p = subject.params
    assert p.view_angle_rad == 0.0 and p.lv_shape == () and p.clutter == ()
    assert p.tissue() == {t: TISSUE_INTENSITY[t] * s
                          for t, s in zip(TISSUE_INTENSITY, p.intensity_scale, strict=True)}


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_view_rotation_rotates_labels_and_image_exactly(subject, turns: int) -> None:  # type: ignore[no-untyped-def]
    p = subject.params
    q = replace(p, view_angle_rad=turns * np.pi / 2)
    lab0, lab1 = render_labels(p, SQUARE, [0, 1]), render_labels(q, SQUARE, [0, 1])
    # Rotating the body-frame sample positions: the labels turn with the subject. Inside
    # the inscribed disc every pixel comes from inside the field of view (the tall RV
    # reaches beyond its edge, and what is beyond rotates into the corners).
    c = np.arange(SQUARE.nx) - SQUARE.nx // 2
    disc = (c[:, None] ** 2 + c[None, :] ** 2) < (SQUARE.nx // 2 - 1) ** 2
    np.testing.assert_array_equal(rot90_centred(lab0, -turns)[..., disc], lab1[..., disc])
    img0, img1 = np.abs(render_image(p, SQUARE, [0])), np.abs(render_image(q, SQUARE, [0]))
    bias_free = np.corrcoef(rot90_centred(img0, -turns).ravel(), img1.ravel())[0, 1]
    assert bias_free > 0.9  # same anatomy; only the scanner-frame bias field differs


def test_view_shift_by_whole_pixels_rolls_the_labels(subject) -> None:  # type: ignore[no-untyped-def]
    p = subject.params
    dx = SQUARE.dx_mm
    q = replace(p, view_shift_mm=(2 * dx, 0.0))  # along x the heart stays inside the FOV
    lab0, lab1 = render_labels(p, SQUARE, [0]), render_labels(q, SQUARE, [0])
    np.testing.assert_array_equal(np.roll(lab0, 2, axis=-1), lab1)


def test_contrast_changes_the_image_not_the_labels(subject) -> None:  # type: ignore[no-untyped-def]
    p = subject.params
    values = tuple(float(v) for v in np.linspace(0.9, 0.1, len(TISSUE_INTENSITY)))
    q = replace(p, tissue_values=values)
    np.testing.assert_array_equal(render_labels(p, SQUARE), render_labels(q, SQUARE))
    assert not np.allclose(render_image(p, SQUARE, [0]), render_image(q, SQUARE, [0]))


def test_border_harmonics_change_the_heart_only(subject) -> None:  # type: ignore[no-untyped-def]
    p = subject.params
    q = replace(p, lv_shape=(0.08, 0.0, 0.0, 0.04, 0.0, 0.0), rv_shape=(0.0, 0.1, 0, 0, 0, 0))
    lab0, lab1 = render_labels(p, SQUARE, [0]), render_labels(q, SQUARE, [0])
    assert (lab0 != lab1).any()
    # Away from the heart the image is untouched.
    heart = (lab0 > 0) | (lab1 > 0)
    grown = heart.any(axis=(0, 1))
    for _ in range(6):
        grown = grown | np.roll(grown, 1, 0) | np.roll(grown, -1, 0)
        grown = grown | np.roll(grown, 1, 1) | np.roll(grown, -1, 1)
    img0, img1 = render_image(p, SQUARE, [0]), render_image(q, SQUARE, [0])
    np.testing.assert_array_equal(img0[..., ~grown], img1[..., ~grown])


def test_clutter_and_papillary_muscles_change_the_image_not_the_labels(subject) -> None:  # type: ignore[no-untyped-def]
    p = subject.params
    q = replace(p, clutter=(-40.0, 30.0, 10.0, 10.0, 1.0),
                papillary=(0.0, 0.6, 0.2, 2.0, 0.6, 0.2, -2.0, 0.5, 0.15))
    np.testing.assert_array_equal(render_labels(p, SQUARE), render_labels(q, SQUARE))
    diff = np.abs(render_image(p, SQUARE, [0]) - render_image(q, SQUARE, [0])) > 1e-6
    assert diff.any()


def test_subject_snr_scales_the_noise_only(subject) -> None:  # type: ignore[no-untyped-def]
    a = scanner_setup(replace(subject, params=replace(subject.params, snr=20.0)), SQUARE, False)
    b = scanner_setup(replace(subject, params=replace(subject.params, snr=40.0)), SQUARE, False)
    np.testing.assert_allclose(a.noise_cov, 4.0 * b.noise_cov, rtol=1e-6)
    np.testing.assert_array_equal(a.sensitivities, b.sensitivities)


def test_train_and_shifted_families_do_not_overlap(subject) -> None:  # type: ignore[no-untyped-def]
    train = [randomized_fields("train", subject.params, np.random.default_rng(i))
             for i in range(200)]
    shifted = [randomized_fields("shifted", subject.params, np.random.default_rng(i))
               for i in range(200)]
    angles = np.array([t["view_angle_rad"] for t in train])
    assert angles.min() < -2.8 and angles.max() > 2.8  # full circle of poses in training
    assert max(t["snr"] for t in shifted) <= 12.0 <= min(t["snr"] for t in train)
    assert max(t["n_coils"] for t in train) < min(t["n_coils"] for t in shifted)
    assert max(t["fat_mm"] for t in train) <= 20.0 <= min(t["fat_mm"] for t in shifted)
    assert randomized_fields("none", subject.params, np.random.default_rng(0)) == {}


def test_randomized_subjects_keep_their_class_rules() -> None:
    from simulator.disease import rule_violations

    cfg = SimConfig(randomize="train")
    for sid in range(5):
        s = make_subject(100 + sid, 0, cfg)
        assert rule_violations(s.diagnosis, s.phenotypes, s.params.bsa_m2, s.max_wall_mm,
                               s.params.infarct) == []
        assert s.params.view_angle_rad != 0.0


def _one_wave(group: str, kx: float, amp: float) -> tuple[float, ...]:
    """A texture with a single plane wave along body x in ``group``, none elsewhere."""
    from simulator.anatomy import TEXTURE_GROUPS, TEXTURE_WAVES

    waves = [0.0] * (5 * TEXTURE_WAVES * len(TEXTURE_GROUPS))
    g = 5 * TEXTURE_WAVES * TEXTURE_GROUPS.index(group)
    waves[g : g + 5] = [kx, 0.0, 0.0, 0.0, amp]
    return tuple(waves)


def test_texture_changes_the_image_not_the_labels(subject) -> None:  # type: ignore[no-untyped-def]
    p = subject.params
    q = replace(p, texture=_one_wave("myocardium", 3.0, 0.3))
    np.testing.assert_array_equal(render_labels(p, SQUARE), render_labels(q, SQUARE))
    img0, img1 = render_image(p, SQUARE, [0]), render_image(q, SQUARE, [0])
    lab = render_labels(p, SQUARE, [0])
    myo = lab == 2
    # Exactly the analytic factor on myocardium pixels (supersample 1: one sample each).
    from simulator.phantom import pixel_coords_mm

    x = pixel_coords_mm(SQUARE.nx, SQUARE.dx_mm)
    factor = np.exp(0.3 * np.cos(2 * np.pi * 3.0 * x / 100.0))
    want = img0 * np.broadcast_to(factor, img0.shape)
    np.testing.assert_allclose(img1[myo], want[myo], rtol=1e-5)
    # RV blood is untouched by a myocardium-only texture (LV cavity pixels may hold a
    # papillary muscle, which is myocardium labelled cavity).
    rv = lab == 1
    assert rv.sum() > 20
    np.testing.assert_array_equal(img1[rv], img0[rv])


def test_zero_amplitude_texture_is_no_texture(subject) -> None:  # type: ignore[no-untyped-def]
    p = subject.params
    q = replace(p, texture=_one_wave("static", 4.0, 0.0))
    np.testing.assert_allclose(render_image(q, SQUARE, [0]), render_image(p, SQUARE, [0]),
                               rtol=1e-6)


def test_static_texture_moves_with_the_body(subject) -> None:  # type: ignore[no-untyped-def]
    p = replace(subject.params, texture=_one_wave("static", 2.5, 0.3))
    q = replace(p, view_angle_rad=np.pi / 2)

    def ratio_and_body(s):  # type: ignore[no-untyped-def]
        plain = np.abs(render_image(replace(s, texture=()), SQUARE, [0]))
        body = (plain > 1e-3) & (render_labels(s, SQUARE, [0]) == 0)
        return np.abs(render_image(s, SQUARE, [0])) / np.maximum(plain, 1e-9), body

    (r0, b0), (r1, b1) = ratio_and_body(p), ratio_and_body(q)
    both = rot90_centred(b0, -1) & b1
    assert both.sum() > 1000 and r1[both].std() > 0.05
    # The factor is fixed to the body: rotating the subject rotates the texture with it.
    np.testing.assert_allclose(rot90_centred(r0, -1)[both], r1[both], rtol=1e-4)


def test_training_draws_texture_and_the_shifted_cohort_does_not(subject) -> None:  # type: ignore[no-untyped-def]
    train = [randomized_fields("train", subject.params, np.random.default_rng(i))
             for i in range(100)]
    shifted = [randomized_fields("shifted", subject.params, np.random.default_rng(i))
               for i in range(20)]
    textured = [t["texture"] for t in train if t["texture"]]
    assert 60 <= len(textured) <= 95
    amps = np.array([w[4::5] for w in textured])
    assert amps.max() <= 0.2 and amps.max() > 0.1
    assert all("texture" not in t for t in shifted)
