"""Domain randomization of the phantom: pose, shape, contrast, clutter, SNR and coils.

Real hearts differ from the plain phantom in everything a scanner and a body can
vary. Training subjects (``SimConfig.randomize = "train"``) therefore draw, per
subject: a full in-plane rotation and a shift of the whole subject, smooth
harmonic deformations of the LV and RV borders, a variable RV crescent, 2-5
papillary muscles / trabeculae, extra structures around the heart (bright
vessels that are not the LV among them), tissue intensities drawn per tissue
(bSSFP-like jitter, or fully random in the spirit of SynthSeg), stronger bias
and background phase, a blood SNR of 12-80 and 4-16 receive coils, and the
class-specific motion of ``disease.MOTION_RANGES`` (base descent towards the apex,
ejection and filling timing), and smooth per-tissue texture (blood pool, myocardium and
static anatomy each vary by up to about +-35 % over a few centimetres). The ground
truth stays exact: labels are rendered from the same parameters.

``"shifted"`` draws families held out of training entirely: low blood-myocardium
contrast with dark fat, an obese body habitus, stronger border deformations, more
clutter, SNR 8-12 and 20-32 coils. It is the project's own out-of-distribution
test cohort.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from simulator.anatomy import TEXTURE_GROUPS, TEXTURE_WAVES, TISSUE_INTENSITY, SubjectParams
from simulator.disease import draw_motion

#: Randomization modes understood by :func:`randomized_fields`.
MODES = ("none", "train", "shifted")


def _harmonic_coeffs(rng: np.random.Generator, amplitude: float) -> tuple[float, ...]:
    """``(a2, b2, a3, b3, a4, b4)`` with amplitude falling as 1/(k - 1)."""
    return tuple(
        float(amplitude / (k - 1) * rng.uniform(-1.0, 1.0)) for k in (2, 2, 3, 3, 4, 4)
    )


def _tissues(mode: str, rng: np.random.Generator) -> tuple[float, ...]:
    names = tuple(TISSUE_INTENSITY)
    if mode == "shifted":
        val = {t: TISSUE_INTENSITY[t] * float(np.exp(rng.uniform(-0.3, 0.3))) for t in names}
        val["blood"] = rng.uniform(0.45, 0.7)
        val["myocardium"] = rng.uniform(0.3, 0.42)
        val["fat"] = rng.uniform(0.2, 0.45)
        val["liver"] = rng.uniform(0.4, 0.6)
    elif rng.uniform() < 0.25:
        # SynthSeg-like: any contrast, as long as blood and myocardium differ.
        while True:
            val = {t: float(rng.uniform(0.03, 1.0)) for t in names}
            if abs(val["blood"] - val["myocardium"]) >= 0.2:
                break
    else:
        val = {t: TISSUE_INTENSITY[t] * float(np.exp(rng.uniform(-0.4, 0.4))) for t in names}
        val["blood"] = rng.uniform(0.7, 1.2)
        val["myocardium"] = rng.uniform(0.15, 0.4)
    return tuple(float(val[t]) for t in names)


def _texture(rng: np.random.Generator) -> tuple[float, ...]:
    """Plane waves of every texture group: wavelengths 15-100 mm in-plane, >= 40 mm
    through-plane, summed amplitude up to about 0.35 (a factor of 0.7-1.4)."""
    if rng.uniform() < 0.2:
        return ()  # some subjects keep piecewise-constant tissues
    out: list[float] = []
    for _ in TEXTURE_GROUPS:
        top = rng.uniform(0.0, 0.2)
        for _ in range(TEXTURE_WAVES):
            k, theta = rng.uniform(1.0, 6.7), rng.uniform(0.0, 2.0 * np.pi)
            out += [float(k * np.cos(theta)), float(k * np.sin(theta)),
                    float(rng.uniform(-2.5, 2.5)), float(rng.uniform(0.0, 2.0 * np.pi)),
                    float(rng.uniform(0.0, top))]
    return tuple(out)


def _clutter(p: SubjectParams, n: int, rng: np.random.Generator) -> tuple[float, ...]:
    out: list[float] = []
    for _ in range(n):
        r, t = np.sqrt(rng.uniform()), rng.uniform(0.0, 2.0 * np.pi)
        x = 0.75 * p.body_semi_x_mm * r * np.cos(t)
        y = p.body_centre_y_mm + 0.75 * p.body_semi_y_mm * r * np.sin(t)
        a = rng.uniform(4.0, 18.0)
        b = a * rng.uniform(0.6, 1.4)
        bright = rng.uniform() < 0.5
        v = rng.uniform(0.7, 1.2) if bright else rng.uniform(0.03, 0.9)
        out += [float(x), float(y), float(a), float(b), float(v)]
    return tuple(out)


def randomized_fields(mode: str, p: SubjectParams, rng: np.random.Generator) -> dict[str, Any]:
    """Fields of ``p`` to replace for randomization ``mode`` (empty for "none").

    Drawn before the volumes are calibrated, so the class targets still hold.
    """
    if mode == "none":
        return {}
    if mode not in MODES:
        raise ValueError(f"randomize must be one of {MODES}, got {mode!r}")
    u = rng.uniform
    shifted = mode == "shifted"
    body_x = p.body_semi_x_mm + (u(5.0, 20.0) if shifted else 0.0)
    fat = u(20.0, 32.0) if shifted else p.fat_mm
    muscles: list[float] = []
    for _ in range(int(rng.integers(2, 6))):
        muscles += [float(u(-np.pi, np.pi)), float(u(0.45, 0.8)), float(u(0.08, 0.2))]
    q = {
        "body_semi_x_mm": float(body_x),
        "fat_mm": float(fat),
        "lv_centre_x_mm": float(u(0.0, 25.0)),
        "lv_centre_y_mm": float(u(-18.0, 5.0)),
        "heart_angle_rad": float(u(-0.6, 0.6)),
        "view_angle_rad": float(u(-np.pi, np.pi)),
        "view_shift_mm": (float(u(-25.0, 25.0)), float(u(-25.0, 25.0))),
        "lv_shape": _harmonic_coeffs(rng, u(0.09, 0.13) if shifted else u(0.0, 0.08)),
        "rv_shape": _harmonic_coeffs(rng, u(0.15, 0.22) if shifted else u(0.0, 0.15)),
        "rv_anchor": (float(u(0.0, 0.3)), float(u(0.1, 0.45))),
        "rv_semi_u_mm": float(16.0 * u(0.7, 1.3)),
        "rv_semi_v_mm": float(34.0 * u(0.8, 1.2)),
        "papillary": tuple(muscles),
        "tissue_values": _tissues(mode, rng),
        "bias_coeffs": tuple(float(x) for x in u(-0.6, 0.6, size=4)),
        "phase_coeffs": (
            float(u(-np.pi, np.pi)),
            *(float(x) for x in u(-2.0, 2.0, size=2)),
            *(float(x) for x in u(-1.2, 1.2, size=2)),
        ),
        "snr": float(np.exp(u(np.log(8.0), np.log(12.0)))) if shifted
        else float(np.exp(u(np.log(12.0), np.log(80.0)))),
        "n_coils": int(rng.integers(20, 33)) if shifted else int(rng.integers(4, 17)),
    }
    n_clutter = int(rng.integers(4, 8) if shifted else rng.integers(1, 6))
    q["clutter"] = _clutter(replace(p, body_semi_x_mm=body_x), n_clutter, rng)
    q.update(draw_motion(p.diagnosis, rng))
    if not shifted:
        # Drawn last so that the rest of a subject is what it was before texture existed
        # (the shifted cohort, which keeps piecewise-constant tissues, is unchanged).
        q["texture"] = _texture(rng)
    return q
