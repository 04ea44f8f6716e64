"""Subjects of the cohort: deterministic draw, calibration to targets, ground truth.

``make_subject(subject_id, seed, config)`` always returns the same subject on
any machine: every random number comes from
``np.random.default_rng([seed, subject_id])``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from kmtr_stream.cardiac import phenotypes_from_labels
from kmtr_stream.conventions import CLASSES, PHENOTYPES, Label
from kmtr_stream.errors import KmtrError
from simulator.anatomy import SubjectParams, akinetic_fraction, mosteller_bsa
from simulator.config import SimConfig
from simulator.disease import DiseaseTargets, draw_targets, rule_violations
from simulator.phantom import plane_positions_mm, render_labels, slice_geometry
from simulator.randomization import randomized_fields

_MAX_ATTEMPTS = 40


@dataclass(frozen=True)
class Subject:
    """One simulated subject and its ground truth.

    Attributes:
        params: phantom parameters.
        labels: ``(phases, slices, ny, nx)`` uint8 ACDC labels for every phase.
        phenotypes: the nine phenotypes computed from ``labels`` (ED = phase 0).
        es_phase: phase of minimum LV volume in ``labels``.
        max_wall_mm: largest end-diastolic LV wall thickness of the phantom.
    """

    params: SubjectParams
    labels: np.ndarray
    phenotypes: dict[str, float]
    es_phase: int
    max_wall_mm: float

    @property
    def diagnosis(self) -> int:
        """Class index into ``conventions.CLASSES``."""
        return self.params.diagnosis

    def phenotype_vector(self) -> np.ndarray:
        """``(9,)`` float32 phenotypes in ``PHENOTYPES`` order."""
        return np.array([self.phenotypes[k] for k in PHENOTYPES], dtype=np.float32)

    def ground_truth_json(self) -> dict[str, Any]:
        """Sidecar metadata: phenotypes, class, BSA, ES phase, seed and parameters."""
        return {
            "subject_id": self.params.subject_id,
            "seed": self.params.seed,
            "diagnosis": CLASSES[self.diagnosis],
            "diagnosis_index": self.diagnosis,
            "bsa_m2": self.params.bsa_m2,
            "ed_phase": 0,
            "es_phase": self.es_phase,
            "phenotypes": self.phenotypes,
            "max_wall_mm": self.max_wall_mm,
            "params": self.params.to_json(),
        }


def _volume_ml(labels: np.ndarray, label: Label, cfg: SimConfig) -> np.ndarray:
    """``(phases,)`` volume of one label in mL."""
    voxel_ml = float(np.prod(cfg.voxel_size_mm)) / 1000.0
    return (labels == int(label)).sum(axis=(1, 2, 3)) * voxel_ml


def _solve(
    f: Any, lo: float, hi: float, tol: float, max_evals: int = 8, f_lo: float | None = None
) -> float:
    """Root of an increasing function on [lo, hi] by regula falsi (Illinois variant).

    Rasterised volumes are near-linear in the parameters, so a few evaluations
    reach ``|f| <= tol``; the result is clamped to the interval. ``f_lo`` may be
    given when ``f(lo)`` is known without evaluating it.
    """
    f_lo = f(lo) if f_lo is None else f_lo
    f_hi = f(hi)
    if f_lo >= 0:
        return lo
    if f_hi <= 0:
        return hi
    side = 0
    x = 0.5 * (lo + hi)
    for _ in range(max_evals - 2):
        x = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        fx = f(x)
        if abs(fx) <= tol:
            return x
        if fx < 0:
            lo, f_lo = x, fx
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi = x, fx
            if side == 1:
                f_lo *= 0.5
            side = 1
    return x


def lv_contraction_for_ef(lvef: float, akinetic: np.ndarray) -> float:
    """Radial contraction ``k`` giving ``lvef`` (%) when ``akinetic`` (angles,) parts do not move.

    Each slice's cavity area is ``1/2 * integral r_endo(theta)^2``, with
    ``r_endo = R (1 - k (1 - akinetic))`` at end-systole, so the area ratio (and the
    ejection fraction, every slice alike) is ``mean((1 - k (1 - akinetic))^2)``.
    """
    ks = np.linspace(0.0, 0.95, 400)
    ratio = np.mean((1.0 - ks[:, None] * (1.0 - akinetic[None, :])) ** 2, axis=1)
    # ratio falls with k; interpolate on the reversed (increasing) curve.
    return float(np.interp(1.0 - lvef / 100.0, ratio[::-1], ks[::-1]))


def _solve_lv_contraction(p: SubjectParams, lvef: float, cfg: SimConfig) -> float:
    """Radial contraction giving ``lvef`` (%) from the rasterised labels.

    Base descent empties the ventricle too (and takes the basal plane into the atria
    at end-systole), so the slice-alike estimate of ``lv_contraction_for_ef`` is only
    the starting bracket.
    """
    ed = float(_volume_ml(render_labels(p, cfg, [0]), Label.LV_CAVITY, cfg)[0])

    def ef_gap(k: float) -> float:
        es = _volume_ml(
            render_labels(replace(p, lv_contraction=k), cfg, [p.es_phase]), Label.LV_CAVITY, cfg
        )[0]
        return float(100.0 * (1.0 - es / max(ed, 1e-3)) - lvef)

    return _solve(ef_gap, 0.0, min(p.lv_contraction + 0.1, 0.95), tol=0.7)


def _calibrate(p: SubjectParams, t: DiseaseTargets, cfg: SimConfig) -> SubjectParams:
    """Tune radii and contractions so the rasterised volumes hit the targets."""
    lv_target = t.lvedv_index * p.bsa_m2
    rv_target = t.rvedv_index * p.bsa_m2
    z = plane_positions_mm(p, cfg)
    taper = np.clip(1.0 - (z / p.lv_length_mm) ** 2, 0.0, 1.0).sum()
    radius = float(np.sqrt(lv_target * 1000.0 / (np.pi * cfg.slice_spacing_mm * taper)))
    p = replace(p, lv_radius_mm=radius)
    # One correction from the rasterised volume; the analytic estimate is already close.
    lv = float(_volume_ml(render_labels(p, cfg, [0]), Label.LV_CAVITY, cfg)[0])
    p = replace(p, lv_radius_mm=p.lv_radius_mm * float(np.sqrt(lv_target / max(lv, 1e-3))))
    w = akinetic_fraction(t.infarct_angle_rad, t.infarct_kappa) if t.infarct else np.zeros(360)
    p = replace(p, lv_contraction=lv_contraction_for_ef(t.lvef, w))
    if p.base_descent_mm > 0:
        p = replace(p, lv_contraction=_solve_lv_contraction(p, t.lvef, cfg))

    base_u, base_v = p.rv_semi_u_mm, p.rv_semi_v_mm

    def rv_size_gap(log_scale: float) -> float:
        f = float(np.exp(log_scale))
        q = replace(p, rv_semi_u_mm=base_u * f, rv_semi_v_mm=base_v * f)
        return float(_volume_ml(render_labels(q, cfg, [0]), Label.RV_CAVITY, cfg)[0] - rv_target)

    f = float(np.exp(_solve(rv_size_gap, np.log(0.5), np.log(4.0), tol=0.02 * rv_target)))
    p = replace(p, rv_semi_u_mm=base_u * f, rv_semi_v_mm=base_v * f)
    ed_rv = float(_volume_ml(render_labels(p, cfg, [0]), Label.RV_CAVITY, cfg)[0])

    def rv_gap(k: float) -> float:
        es = _volume_ml(
            render_labels(replace(p, rv_contraction=k), cfg, [p.es_phase]), Label.RV_CAVITY, cfg
        )[0]
        return float(100.0 * (1.0 - es / max(ed_rv, 1e-3)) - t.rvef)

    return replace(p, rv_contraction=_solve(rv_gap, 0.0, 0.8, tol=0.7, f_lo=-t.rvef))


def _draw_params(
    subject_id: int,
    seed: int,
    diagnosis: int,
    t: DiseaseTargets,
    cfg: SimConfig,
    rng: np.random.Generator,
) -> SubjectParams:
    u = rng.uniform
    height = u(155.0, 195.0)
    bmi = u(19.0, 31.0)
    weight = bmi * (height / 100.0) ** 2
    bsa = mosteller_bsa(height, weight)
    coverage = cfg.slice_positions_mm()[-1]
    lv_length = coverage * u(1.06, 1.2)
    n = cfg.n_phases
    es_lo, es_hi = max(1, round(0.3 * n)), min(n - 1, max(1, round(0.4 * n)))
    return SubjectParams(
        subject_id=int(subject_id),
        seed=int(seed),
        diagnosis=int(diagnosis),
        height_cm=height,
        weight_kg=weight,
        bsa_m2=bsa,
        body_semi_x_mm=float(np.clip(128.0 + 40.0 * (bsa - 1.8) + u(-8.0, 8.0), 112.0, 175.0)),
        body_semi_y_mm=float(np.clip(84.0 + 12.0 * (bsa - 1.8) + u(-4.0, 4.0), 74.0, 94.0)),
        body_centre_y_mm=u(-2.0, 4.0),
        fat_mm=float(np.clip(4.0 + 1.1 * (bmi - 19.0) + u(-2.0, 2.0), 3.0, 20.0)),
        muscle_mm=u(7.0, 12.0),
        liver_start_mm=u(25.0, 55.0),
        aorta_radius_mm=u(9.0, 13.0),
        lv_centre_x_mm=u(8.0, 20.0),
        lv_centre_y_mm=u(-12.0, 0.0),
        heart_angle_rad=u(-0.3, 0.3),
        lv_length_mm=lv_length,
        rv_length_mm=lv_length * u(0.82, 0.95),
        lv_radius_mm=25.0,
        wall_mm=t.wall_mm,
        hypertrophy_mm=t.hypertrophy_mm,
        hypertrophy_angle_rad=t.hypertrophy_angle_rad,
        hypertrophy_kappa=u(1.5, 3.0),
        lv_contraction=0.3,
        infarct=t.infarct,
        infarct_angle_rad=t.infarct_angle_rad,
        infarct_kappa=t.infarct_kappa,
        infarct_thinning_mm=t.infarct_thinning_mm,
        rv_semi_u_mm=16.0,
        rv_semi_v_mm=34.0,
        rv_contraction=0.3,
        es_phase=int(rng.integers(es_lo, es_hi + 1)),
        intensity_scale=tuple(float(x) for x in u(0.88, 1.12, size=9)),
        bias_coeffs=(u(-0.3, 0.3), u(-0.3, 0.3), u(-0.25, 0.1), u(-0.2, 0.2)),
        phase_coeffs=(u(-np.pi, np.pi), u(-1.2, 1.2), u(-1.2, 1.2), u(-0.8, 0.8), u(-0.8, 0.8)),
    )


def max_wall_mm(p: SubjectParams, cfg: SimConfig) -> float:
    """Largest end-diastolic LV wall thickness over slices (mm)."""
    g = slice_geometry(p, cfg)
    present = g.radius > 0
    if not present.any():
        return 0.0
    return float(np.max((g.wall + g.hyp)[present]))


def subject_rng(subject_id: int, seed: int) -> np.random.Generator:
    """The generator every random draw of one subject comes from."""
    return np.random.default_rng([int(seed), int(subject_id)])


def make_subject(
    subject_id: int, seed: int, cfg: SimConfig, diagnosis: int | None = None
) -> Subject:
    """Draw, calibrate and verify one subject.

    Args:
        subject_id: non-negative subject id.
        seed: cohort seed.
        cfg: simulator configuration.
        diagnosis: force a class (index into CLASSES); drawn from
            ``cfg.class_weights`` when None.

    Returns:
        The subject with label maps of every phase and label-derived phenotypes.
    """
    rng = subject_rng(subject_id, seed)
    w = np.asarray(cfg.class_weights, dtype=np.float64)
    drawn = int(rng.choice(len(CLASSES), p=w / w.sum()))
    diag = drawn if diagnosis is None else int(diagnosis)
    failures: list[str] = []
    for _ in range(_MAX_ATTEMPTS):
        t = draw_targets(diag, rng)
        p = _draw_params(subject_id, seed, diag, t, cfg, rng)
        p = _calibrate(replace(p, **randomized_fields(cfg.randomize, p, rng)), t, cfg)
        labels = render_labels(p, cfg)
        phen = phenotypes_from_labels(labels, cfg.voxel_size_mm, ed_phase=0)
        es = int(np.argmin(_volume_ml(labels, Label.LV_CAVITY, cfg)))
        wall = max_wall_mm(p, cfg)
        failures = rule_violations(diag, phen, p.bsa_m2, wall, p.infarct)
        if not failures and es != 0:
            return Subject(params=p, labels=labels, phenotypes=phen, es_phase=es, max_wall_mm=wall)
    raise KmtrError(
        f"subject {subject_id} (seed {seed}, class {CLASSES[diag]}) broke its class "
        f"rules in {_MAX_ATTEMPTS} draws, last: {failures}"
    )
