"""Subject anatomy: the parameters that define one simulated body and heart.

Coordinates are millimetres in the image plane, x to the image right (the
subject's left, radiological view), y downwards (posterior); z runs from the
cardiac base towards the apex. The heart frame is rotated by ``heart_angle_rad``:
its -u axis points at the septum / right ventricle, -v anteriorly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from simulator.motion import contraction_curve

#: Nominal bSSFP-like magnitudes of the tissues (blood bright, lung dark).
TISSUE_INTENSITY: dict[str, float] = {
    "blood": 1.0,
    "myocardium": 0.28,
    "fat": 0.9,
    "lung": 0.04,
    "liver": 0.3,
    "muscle": 0.24,
    "soft": 0.36,
    "bone": 0.42,
    "csf": 0.95,
}


@dataclass(frozen=True)
class SubjectParams:
    """Everything that defines one subject's phantom (units in the names).

    Heart radii are end-diastolic values at the base; slices scale them with a
    half-ellipsoid taper towards the apex. Regional terms are von Mises bumps
    over the circumferential angle of the heart frame.
    """

    subject_id: int
    seed: int
    diagnosis: int
    height_cm: float
    weight_kg: float
    bsa_m2: float
    # body
    body_semi_x_mm: float
    body_semi_y_mm: float
    body_centre_y_mm: float
    fat_mm: float
    muscle_mm: float
    liver_start_mm: float
    aorta_radius_mm: float
    # heart placement
    lv_centre_x_mm: float
    lv_centre_y_mm: float
    heart_angle_rad: float
    lv_length_mm: float
    rv_length_mm: float
    # left ventricle
    lv_radius_mm: float
    wall_mm: float
    hypertrophy_mm: float
    hypertrophy_angle_rad: float
    hypertrophy_kappa: float
    lv_contraction: float
    infarct: bool
    infarct_angle_rad: float
    infarct_kappa: float
    infarct_thinning_mm: float
    # right ventricle
    rv_semi_u_mm: float
    rv_semi_v_mm: float
    rv_contraction: float
    # cycle
    es_phase: int
    # image appearance
    intensity_scale: tuple[float, ...]
    bias_coeffs: tuple[float, ...]
    phase_coeffs: tuple[float, ...]
    # Domain randomization (``SimConfig.randomize``); the defaults are the plain phantom.
    #: In-plane rotation of the whole subject (body and heart) in the scanner frame.
    view_angle_rad: float = 0.0
    #: Shift of the whole subject in the scanner frame, ``(x, y)`` mm.
    view_shift_mm: tuple[float, float] = (0.0, 0.0)
    #: Border harmonics ``(a2, b2, a3, b3, a4, b4)``: relative radius change of the LV
    #: endocardium/epicardium ``sum_k a_k cos(k t) + b_k sin(k t)`` over the heart angle.
    lv_shape: tuple[float, ...] = ()
    #: Same harmonics for the RV cavity border.
    rv_shape: tuple[float, ...] = ()
    #: RV ellipse centre in the heart frame, as fractions of the LV epicardial radius:
    #: ``(septal anchor, anterior offset)``; (0.1, 0.25) is the plain phantom.
    rv_anchor: tuple[float, float] = (0.1, 0.25)
    #: Papillary muscles / trabeculae ``(angle, radial fraction, size fraction)`` triples,
    #: flattened (image only; labelled LV cavity, the ACDC convention). Empty: two muscles.
    papillary: tuple[float, ...] = ()
    #: Extra structures ``(x, y, semi x, semi y, intensity)`` quintuples in the body frame,
    #: flattened: vessels, stomach, bright round structures that are not the LV.
    clutter: tuple[float, ...] = ()
    #: Absolute tissue intensities in ``TISSUE_INTENSITY`` order (overrides
    #: ``intensity_scale`` when set: contrast randomized per subject and tissue).
    tissue_values: tuple[float, ...] = ()
    #: Smooth multiplicative texture of each group of ``TEXTURE_GROUPS``: per group,
    #: ``TEXTURE_WAVES`` plane waves ``(kx, ky, kz, phase, amplitude)`` (k in cycles per
    #: 100 mm, body frame), flattened; the factor is ``exp(sum a cos(2 pi k.r / 100 + phase))``
    #: (see ``phantom.texture_factor``). Empty: tissues are piecewise constant.
    texture: tuple[float, ...] = ()
    #: Blood SNR of this subject (0: ``SimConfig.snr``).
    snr: float = 0.0
    #: Receive coils of this subject (0: ``SimConfig.n_coils``).
    n_coils: int = 0
    #: How far the slice stack sits below the default base position, mm: the basal
    #: plane cuts the ventricle ``5 + plane_offset_mm`` mm below the ED base (operators
    #: plan it anywhere just under the valve plane).
    plane_offset_mm: float = 0.0
    #: Through-plane descent of the base towards the (fixed) apex at end-systole, mm
    #: (mitral annular excursion). Slices above the descended base show the atria,
    #: which are labelled background (the ACDC convention).
    base_descent_mm: float = 0.0
    #: Systolic time warp of the contraction curve (see ``motion.contraction_curve``).
    ejection_warp: float = 1.0
    #: Early-filling fraction of diastole (0: one raised cosine).
    early_filling: float = 0.0

    def contraction(self, n_phases: int) -> np.ndarray:
        """``(n_phases,)`` contraction curve of this subject's cycle."""
        return contraction_curve(n_phases, self.es_phase, self.ejection_warp, self.early_filling)

    def tissue(self) -> dict[str, float]:
        """Intensity of every tissue of this subject."""
        if self.tissue_values:
            return dict(zip(TISSUE_INTENSITY, self.tissue_values, strict=True))
        return {
            t: TISSUE_INTENSITY[t] * s
            for t, s in zip(TISSUE_INTENSITY, self.intensity_scale, strict=True)
        }

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of the parameters."""
        return asdict(self)


#: Tissue groups that carry their own texture field, in ``SubjectParams.texture`` order:
#: the cardiac blood pools, the myocardium, and all static (non-cardiac) anatomy.
TEXTURE_GROUPS = ("blood", "myocardium", "static")
#: Plane waves per texture group.
TEXTURE_WAVES = 3


def mosteller_bsa(height_cm: float, weight_kg: float) -> float:
    """Body surface area in m^2 (Mosteller formula)."""
    return float(np.sqrt(height_cm * weight_kg / 3600.0))


def harmonics(cos_t: Any, sin_t: Any, coeffs: tuple[float, ...]) -> Any:
    """``sum_k a_k cos(k t) + b_k sin(k t)``, k = 2, 3, ..., from cos/sin of the angle.

    Harmonics from 2 up keep the border's centroid (k = 1 would shift it).
    """
    out: Any = 0.0
    c_prev, s_prev = cos_t, sin_t  # cos/sin of (k - 1) t, starting at k = 1
    for i in range(0, len(coeffs), 2):
        c_k = c_prev * cos_t - s_prev * sin_t
        s_k = s_prev * cos_t + c_prev * sin_t
        out = out + coeffs[i] * c_k + coeffs[i + 1] * s_k
        c_prev, s_prev = c_k, s_k
    return out


def von_mises(cos_t: Any, sin_t: Any, angle_rad: float, kappa: float) -> Any:
    """Smooth circumferential bump, 1 at ``angle_rad``, from cos/sin of the angle."""
    return np.exp(kappa * (cos_t * np.cos(angle_rad) + sin_t * np.sin(angle_rad) - 1.0))


def akinetic_fraction(infarct_angle_rad: float, infarct_kappa: float) -> np.ndarray:
    """``(360,)`` akinesia weight around the circumference (for solving contraction)."""
    t = np.linspace(0.0, 2.0 * np.pi, 360, endpoint=False)
    return np.asarray(von_mises(np.cos(t), np.sin(t), infarct_angle_rad, infarct_kappa))
