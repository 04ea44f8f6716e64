"""Disease classes: per-class parameter targets and the ACDC diagnostic rules.

Targets are drawn with margins inside the ACDC thresholds; the subject
generator then checks the label-derived phenotypes against :func:`rule_violations`
and redraws the rare subject that pixel quantisation pushed across a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kmtr_stream.conventions import CLASSES

NOR, DCM, HCM, MINF, ARV = (CLASSES.index(c) for c in ("NOR", "DCM", "HCM", "MINF", "ARV"))

#: Coronary territories as heart-frame angles (septum at pi, anterior at -pi/2).
TERRITORY_ANGLE_RAD: dict[str, float] = {"LAD": -2.2, "RCA": 2.0, "LCx": 0.35}


@dataclass(frozen=True)
class DiseaseTargets:
    """Indexed volumes, ejection fractions and wall shape one subject is built to."""

    lvedv_index: float
    lvef: float
    rvedv_index: float
    rvef: float
    wall_mm: float
    hypertrophy_mm: float
    hypertrophy_angle_rad: float
    infarct: bool
    infarct_angle_rad: float
    infarct_kappa: float
    infarct_thinning_mm: float


def draw_targets(diagnosis: int, rng: np.random.Generator) -> DiseaseTargets:
    """Draw the targets of one subject of class ``diagnosis`` (index into CLASSES)."""
    u = rng.uniform
    lv = (u(62.0, 92.0), u(57.0, 70.0))
    rv = (u(60.0, 95.0), u(48.0, 65.0))
    wall, hyp, hyp_angle = u(7.5, 9.5), 0.0, float(np.pi)
    infarct, inf_angle, inf_kappa, thinning = False, 0.0, 3.0, 0.0
    if diagnosis == DCM:
        lv = (u(112.0, 170.0), u(12.0, 34.0))
        rv = (u(65.0, 100.0), u(45.0, 60.0))
        wall = u(6.0, 8.0)
    elif diagnosis == HCM:
        lv = (u(55.0, 85.0), u(63.0, 78.0))
        wall, hyp = u(12.0, 14.5), u(8.0, 13.0)
        hyp_angle = float(np.pi + u(-0.5, 0.5))
    elif diagnosis == MINF:
        lv = (u(80.0, 115.0), u(20.0, 34.0))
        infarct = True
        name = ("LAD", "RCA", "LCx")[int(rng.integers(3))]
        inf_angle = TERRITORY_ANGLE_RAD[name] + u(-0.3, 0.3)
        inf_kappa = u(2.0, 4.0)
        thinning = u(3.0, 4.5)
    elif diagnosis == ARV:
        if rng.uniform() < 0.5:  # dilated right ventricle
            rv = (u(118.0, 170.0), u(30.0, 50.0))
        else:  # failing right ventricle
            rv = (u(80.0, 125.0), u(15.0, 33.0))
    elif diagnosis != NOR:
        raise ValueError(f"diagnosis must index CLASSES (0..{len(CLASSES) - 1}), got {diagnosis}")
    return DiseaseTargets(
        lvedv_index=lv[0],
        lvef=lv[1],
        rvedv_index=rv[0],
        rvef=rv[1],
        wall_mm=wall,
        hypertrophy_mm=hyp,
        hypertrophy_angle_rad=hyp_angle,
        infarct=infarct,
        infarct_angle_rad=inf_angle,
        infarct_kappa=inf_kappa,
        infarct_thinning_mm=thinning,
    )


#: Per class: ranges of base descent (mm, mitral annular excursion), systolic time
#: warp (< 1 empties early) and early-filling fraction of diastole. Longitudinal
#: function falls first in disease (DCM, MINF; HCM despite its high ejection
#: fraction); hypertrophied ventricles eject fast and fill late (impaired
#: relaxation); dilated ones eject slowly and fill early (restrictive filling).
MOTION_RANGES: dict[int, tuple[tuple[float, float], ...]] = {
    NOR: ((11.0, 17.0), (0.85, 1.15), (0.6, 0.85)),
    DCM: ((3.0, 7.0), (1.1, 1.5), (0.75, 0.9)),
    HCM: ((7.0, 12.0), (0.6, 0.85), (0.3, 0.55)),
    MINF: ((4.0, 9.0), (1.0, 1.35), (0.5, 0.8)),
    ARV: ((9.0, 15.0), (0.85, 1.15), (0.6, 0.85)),
}


def draw_motion(diagnosis: int, rng: np.random.Generator) -> dict[str, float]:
    """``SubjectParams`` motion fields (and the basal plane's offset) of one subject."""
    if diagnosis not in MOTION_RANGES:
        raise ValueError(f"diagnosis must index CLASSES (0..{len(CLASSES) - 1}), got {diagnosis}")
    names = ("base_descent_mm", "ejection_warp", "early_filling")
    out = {k: float(rng.uniform(*r)) for k, r in zip(names, MOTION_RANGES[diagnosis], strict=True)}
    # The basal plane sits 2-11 mm under the valve, so whether it reaches the atria at
    # end-systole says little about the class on its own.
    out["plane_offset_mm"] = float(rng.uniform(-3.0, 6.0))
    return out


def rule_violations(
    diagnosis: int, phen: dict[str, float], bsa_m2: float, max_wall_mm: float, infarct: bool
) -> list[str]:
    """ACDC rules of class ``diagnosis`` that the given phenotypes break.

    NOR also excludes every disease criterion, so the classes do not overlap
    (except MINF and DCM, which ACDC separates by regional wall motion).

    Returns:
        Human-readable failures; empty when the subject fits its class.
    """
    lvedvi = phen["LVEDV"] / bsa_m2
    rvedvi = phen["RVEDV"] / bsa_m2
    lvmi = phen["LVM"] / bsa_m2
    lvef, rvef = phen["LVEF"], phen["RVEF"]
    checks: list[tuple[bool, str]]
    normal_rv = [
        (rvedvi < 105.0, f"RVEDVi {rvedvi:.0f} >= 105"),
        (rvef > 42.0, f"RVEF {rvef:.0f} <= 42"),
    ]
    if diagnosis == NOR:
        checks = [
            (lvef > 52.0, f"LVEF {lvef:.0f} <= 52"),
            (lvedvi < 98.0, f"LVEDVi {lvedvi:.0f} >= 98"),
            (lvmi < 105.0, f"LVMi {lvmi:.0f} >= 105"),
            (max_wall_mm < 13.0, "wall >= 13 mm"),
            *normal_rv,
        ]
    elif diagnosis == DCM:
        checks = [
            (lvedvi > 102.0, f"LVEDVi {lvedvi:.0f} <= 102"),
            (lvef < 38.0, f"LVEF {lvef:.0f} >= 38"),
            *normal_rv,
        ]
    elif diagnosis == HCM:
        checks = [
            (lvmi > 112.0, f"LVMi {lvmi:.0f} <= 112"),
            (max_wall_mm > 15.0, "no wall > 15 mm"),
            (lvef > 57.0, f"LVEF {lvef:.0f} <= 57"),
            *normal_rv,
        ]
    elif diagnosis == MINF:
        checks = [
            (lvef < 38.0, f"LVEF {lvef:.0f} >= 38"),
            (infarct, "no akinetic territory"),
            *normal_rv,
        ]
    elif diagnosis == ARV:
        checks = [
            (
                rvedvi > 112.0 or rvef < 38.0,
                f"RVEDVi {rvedvi:.0f} <= 112 and RVEF {rvef:.0f} >= 38",
            ),
            (lvef > 50.0, f"LVEF {lvef:.0f} <= 50"),
        ]
    else:
        raise ValueError(f"diagnosis must index CLASSES (0..{len(CLASSES) - 1}), got {diagnosis}")
    return [msg for ok, msg in checks if not ok]
