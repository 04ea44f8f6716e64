"""Rasterisation of the phantom: anti-aliased complex images and ACDC label maps.

The image is rendered on a grid supersampled ``config.supersample`` times per
axis and box-averaged to pixels (anti-aliasing); labels are evaluated at pixel
centres. Static anatomy (body, fat, chest wall, lungs, liver, spine, aorta) is
rendered once per slice and the beating heart only inside a bounding box, once
per requested phase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kmtr_stream.conventions import Label
from simulator.anatomy import TEXTURE_GROUPS, TEXTURE_WAVES, SubjectParams, harmonics, von_mises
from simulator.config import SimConfig

#: Papillary muscles of the plain phantom: (angle, radial fraction, size fraction).
_PAPILLARY = (-0.9, 0.6, 0.16, 1.2, 0.6, 0.16)
#: Thickness of the RV free wall (rendered as myocardium, labelled background).
RV_WALL_MM = 3.0


def pixel_coords_mm(n: int, d_mm: float, supersample: int = 1) -> np.ndarray:
    """Sample positions along one axis, pixel ``n // 2`` centred on 0 (centred-FFT convention).

    Returns:
        ``(n * supersample,)`` float32 positions in mm, pixel-major.
    """
    centres = (np.arange(n) - n // 2) * d_mm
    offsets = (np.arange(supersample) - (supersample - 1) / 2) * d_mm / supersample
    return (centres[:, None] + offsets[None, :]).reshape(-1).astype(np.float32)


def has_view(p: SubjectParams) -> bool:
    """Whether the subject is rotated or shifted in the scanner frame."""
    return p.view_angle_rad != 0.0 or tuple(p.view_shift_mm) != (0.0, 0.0)


def body_coords(p: SubjectParams, x_mm: np.ndarray, y_mm: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scanner-frame sample axes -> body-frame sample positions.

    Returns the 1-D axes unchanged for an unrotated, unshifted subject (the cheap
    separable path); otherwise ``(y, x)`` float32 grids of body-frame x and y.
    """
    if not has_view(p):
        return x_mm, y_mm
    c, s = np.cos(p.view_angle_rad), np.sin(p.view_angle_rad)
    xs = x_mm[None, :].astype(np.float64) - p.view_shift_mm[0]
    ys = y_mm[:, None].astype(np.float64) - p.view_shift_mm[1]
    return (c * xs + s * ys).astype(np.float32), (c * ys - s * xs).astype(np.float32)


def to_scanner(p: SubjectParams, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body-frame positions -> scanner-frame positions (inverse of ``body_coords``)."""
    c, s = np.cos(p.view_angle_rad), np.sin(p.view_angle_rad)
    return c * x - s * y + p.view_shift_mm[0], s * x + c * y + p.view_shift_mm[1]


@dataclass(frozen=True)
class SliceGeometry:
    """Heart geometry at end-diastole of the tissue at given positions along the long axis.

    Arrays have the shape of the positions: ``(slices,)`` for the slice planes, or
    ``(phases, slices)`` for the tissue each plane cuts in each phase.
    """

    cx: np.ndarray
    cy: np.ndarray
    radius: np.ndarray
    wall: np.ndarray
    rv_u: np.ndarray
    rv_v: np.ndarray
    hyp: np.ndarray


def plane_positions_mm(p: SubjectParams, cfg: SimConfig) -> np.ndarray:
    """``(slices,)`` distance of each slice plane below this subject's end-diastolic base."""
    return np.asarray(cfg.slice_positions_mm(), dtype=np.float64) + p.plane_offset_mm


def slice_geometry(
    p: SubjectParams, cfg: SimConfig, z_mm: np.ndarray | None = None
) -> SliceGeometry:
    """Half-ellipsoid taper of the ventricles from base to apex.

    Args:
        z_mm: tissue positions below the end-diastolic base (default: what the slice
            planes cut at end-diastole, ``plane_positions_mm``).
    """
    z = np.asarray(plane_positions_mm(p, cfg) if z_mm is None else z_mm, dtype=np.float64)
    s_lv = np.sqrt(np.clip(1.0 - (z / p.lv_length_mm) ** 2, 0.0, 1.0))
    s_rv = np.sqrt(np.clip(1.0 - (z / p.rv_length_mm) ** 2, 0.0, 1.0))
    beyond = z > p.lv_length_mm + p.wall_mm
    wall = np.where(beyond, 0.0, p.wall_mm * (1.0 - 0.15 * z / p.lv_length_mm))
    # Hypertrophy is strongest at the base and mid-ventricle.
    hyp = np.where(beyond, 0.0, p.hypertrophy_mm * np.clip(1.2 - z / p.lv_length_mm, 0.0, 1.0))
    return SliceGeometry(
        cx=p.lv_centre_x_mm + 0.10 * z,
        cy=p.lv_centre_y_mm - 0.05 * z,
        radius=p.lv_radius_mm * s_lv,
        wall=wall,
        rv_u=p.rv_semi_u_mm * s_rv,
        rv_v=p.rv_semi_v_mm * s_rv,
        hyp=hyp,
    )


#: Wall of the atria that slices above the descended base cut (rendered, labelled background).
ATRIAL_WALL_MM = 2.0


def tissue_positions_mm(p: SubjectParams, cfg: SimConfig, c: np.ndarray) -> np.ndarray:
    """``(phases, slices)`` end-diastolic position of the tissue each slice plane cuts.

    The base descends by ``base_descent_mm * c`` towards the fixed apex, stretching
    the long axis uniformly, so the plane at ``z`` cuts the tissue that sat at
    ``(z - d) / (1 - d / L)``; negative values lie above the base (the atria).
    """
    z = plane_positions_mm(p, cfg)[None, :]
    d = p.base_descent_mm * np.asarray(c, dtype=np.float64)[:, None]
    return (z - d) / (1.0 - d / p.lv_length_mm)


@dataclass(frozen=True)
class HeartMasks:
    """Boolean heart masks of shape ``(phases, slices, y, x)``."""

    lv_cavity: np.ndarray
    lv_myo: np.ndarray
    rv_cavity: np.ndarray
    rv_wall: np.ndarray
    papillary: np.ndarray
    #: ``(phases, slices, 1, 1)``: the plane cuts the atria, whose masks are labelled background.
    atrial: np.ndarray


def heart_masks(
    p: SubjectParams,
    cfg: SimConfig,
    phases: Sequence[int],
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    labels_only: bool = False,
) -> HeartMasks:
    """Evaluate the heart at sample positions.

    Args:
        p: subject parameters.
        cfg: simulator configuration (slices, cycle).
        phases: cardiac phase indices to evaluate.
        x_mm: ``(x,)`` body-frame sample positions, or a ``(y, x)`` grid of them.
        y_mm: ``(y,)`` body-frame sample positions, or a ``(y, x)`` grid of them.
        labels_only: skip the parts that only the image needs (RV wall, papillary muscles).

    Returns:
        Masks of shape ``(phases, slices, y, x)`` (image-only masks empty when ``labels_only``).
    """
    c = p.contraction(cfg.n_phases)[np.asarray(phases, dtype=np.int64)]
    zeta = tissue_positions_mm(p, cfg, c)  # (P, S)
    atrial = zeta < 0.0
    g = slice_geometry(p, cfg, np.maximum(zeta, 0.0))
    f32 = np.float32
    # Atria fill while the ventricles empty: their walls stay put (no contraction).
    cp = np.where(atrial, 0.0, c[:, None]).astype(f32)[:, :, None, None]  # (P, S, 1, 1)

    def per_slice(a: np.ndarray) -> np.ndarray:
        return a.astype(f32)[:, :, None, None]  # (P, S, 1, 1)

    in_atria = atrial[:, :, None, None]

    if x_mm.ndim == 1:
        dx = x_mm[None, None, None, :] - per_slice(g.cx)  # (P, S, 1, X)
        dy = y_mm[None, None, :, None] - per_slice(g.cy)  # (P, S, Y, 1)
    else:
        dx = x_mm[None, None] - per_slice(g.cx)  # (P, S, Y, X)
        dy = y_mm[None, None] - per_slice(g.cy)
    ca, sa = f32(np.cos(p.heart_angle_rad)), f32(np.sin(p.heart_angle_rad))
    u = dx * ca + dy * sa  # (P, S, Y, X)
    v = dy * ca - dx * sa
    rho2 = u * u + v * v

    radius, wall = per_slice(g.radius), per_slice(g.wall)
    # Without regional terms the wall and contraction are per-slice scalars (cheap path).
    thick: np.ndarray = wall
    k: np.ndarray | np.float32 = f32(p.lv_contraction)
    rv_border: np.ndarray | np.float32 = f32(1.0)
    if p.hypertrophy_mm > 0 or p.infarct or p.lv_shape or p.rv_shape:
        inv = 1.0 / np.sqrt(np.maximum(rho2, f32(1e-12)))
        cos_t, sin_t = u * inv, v * inv
        if p.lv_shape:
            radius = radius * (1.0 + harmonics(cos_t, sin_t, p.lv_shape)).astype(f32)
        if p.rv_shape:
            rv_border = (1.0 + harmonics(cos_t, sin_t, p.rv_shape)).astype(f32)
        if p.hypertrophy_mm > 0:
            thick = thick + per_slice(g.hyp) * von_mises(
                cos_t, sin_t, p.hypertrophy_angle_rad, p.hypertrophy_kappa
            )
        if p.infarct:
            w_inf = von_mises(cos_t, sin_t, p.infarct_angle_rad, p.infarct_kappa)
            thick = thick - f32(p.infarct_thinning_mm) * w_inf
            k = k * (1.0 - w_inf)
    thick = np.maximum(thick, f32(2.0)) * (wall > 0)
    thick = np.where(in_atria, f32(ATRIAL_WALL_MM), thick)
    r_endo = radius * (1.0 - cp * k)  # (P, S, Y, X) or (P, S, 1, 1)
    r_endo2 = r_endo * r_endo
    # Incompressible myocardium: each angular sector keeps its area (wall thickening):
    # r_epi^2 = r_endo^2 + (R + t)^2 - R^2. Squared radii avoid square roots.
    lv_cav = rho2 < r_endo2
    lv_epi = rho2 < r_endo2 + (radius + thick) ** 2 - radius * radius
    lv_myo = lv_epi & ~lv_cav

    # RV ellipse anchored just inside the septum; the free wall moves towards it.
    rv_a = per_slice(g.rv_u) * (1.0 - cp * f32(p.rv_contraction))
    rv_b = per_slice(g.rv_v) * (1.0 - 0.35 * cp * f32(p.rv_contraction))
    anchor = per_slice(p.rv_anchor[0] * (g.radius + g.wall))
    uc, vc = anchor - rv_a, -p.rv_anchor[1] * per_slice(g.radius + g.wall)
    present = rv_a > 0.5
    safe_a, safe_b = np.maximum(rv_a, f32(1e-3)), np.maximum(rv_b, f32(1e-3))
    e_in = ((u - uc) / safe_a) ** 2 + ((v - vc) / safe_b) ** 2
    rv_cav = (e_in < rv_border) & ~lv_epi & present
    if labels_only:
        empty = np.zeros(lv_cav.shape, dtype=bool)
        return HeartMasks(
            lv_cavity=lv_cav, lv_myo=lv_myo, rv_cavity=rv_cav, rv_wall=empty, papillary=empty,
            atrial=in_atria,
        )
    e_out = ((u - uc) / (safe_a + RV_WALL_MM)) ** 2 + ((v - vc) / (safe_b + RV_WALL_MM)) ** 2
    rv_wall = (e_out < rv_border) & ~rv_cav & ~lv_epi & present

    # Papillary muscles: image only (ACDC counts them as cavity).
    pap = np.zeros(lv_cav.shape, dtype=bool)
    muscles = p.papillary or _PAPILLARY
    for i in range(0, len(muscles), 3):
        ang, rf, sf = muscles[i : i + 3]
        pu, pv = rf * r_endo * np.cos(ang), rf * r_endo * np.sin(ang)
        pr = sf * radius
        pap |= ((u - pu) ** 2 + (v - pv) ** 2) < pr * pr
    pap &= lv_cav & (radius > 0.5 * p.lv_radius_mm) & ~in_atria
    return HeartMasks(
        lv_cavity=lv_cav, lv_myo=lv_myo, rv_cavity=rv_cav, rv_wall=rv_wall, papillary=pap,
        atrial=in_atria,
    )


def masks_to_labels(m: HeartMasks) -> np.ndarray:
    """ACDC labels ``(phases, slices, y, x)`` uint8 from heart masks."""
    labels = np.zeros(m.lv_cavity.shape, dtype=np.uint8)
    labels[m.rv_cavity] = int(Label.RV_CAVITY)
    labels[m.lv_myo] = int(Label.LV_MYOCARDIUM)
    labels[m.lv_cavity] = int(Label.LV_CAVITY)
    labels[np.broadcast_to(m.atrial, labels.shape)] = int(Label.BACKGROUND)
    return labels


def _heart_box(
    p: SubjectParams, cfg: SimConfig, n: int, d_mm: float, centre: np.ndarray, axis_extent: float
) -> tuple[int, int]:
    """Pixel range ``[lo, hi)`` along one axis that holds the heart in every slice."""
    lo_mm = float(centre.min()) - axis_extent
    hi_mm = float(centre.max()) + axis_extent
    lo = int(np.floor(lo_mm / d_mm)) + n // 2
    hi = int(np.ceil(hi_mm / d_mm)) + n // 2 + 1
    return max(lo, 0), min(max(hi, 0), n)


def heart_extent_mm(p: SubjectParams) -> float:
    """Radius around the LV centre that contains the whole heart (any phase, any slice)."""
    grow = 1.0 + float(np.sum(np.abs(p.lv_shape)))
    epi = p.lv_radius_mm * grow + p.wall_mm + p.hypertrophy_mm
    # RV ellipse: its centre's distance from the LV centre plus its longer semi-axis
    # (base slice, end-diastole: the largest it gets; see heart_masks).
    base_epi = p.lv_radius_mm * grow + p.wall_mm
    a, b = p.rv_anchor
    centre = float(np.hypot(a * base_epi - p.rv_semi_u_mm, b * base_epi))
    rv_grow = 1.0 + float(np.sum(np.abs(p.rv_shape)))
    rv = centre + max(p.rv_semi_u_mm, p.rv_semi_v_mm) * rv_grow + RV_WALL_MM * rv_grow
    return max(epi, rv) + 4.0


def heart_centres_scanner(p: SubjectParams, g: SliceGeometry) -> tuple[np.ndarray, np.ndarray]:
    """``(slices,)`` LV centres in the scanner frame (where the boxes are cut)."""
    if not has_view(p):
        return g.cx, g.cy
    return to_scanner(p, g.cx, g.cy)


def render_labels(
    p: SubjectParams, cfg: SimConfig, phases: Sequence[int] | None = None
) -> np.ndarray:
    """ACDC label maps at the reconstructed pixel centres.

    Returns:
        ``(phases, slices, ny, nx)`` uint8 labels (all phases when ``phases`` is None).
    """
    phases = list(range(cfg.n_phases)) if phases is None else list(phases)
    g = slice_geometry(p, cfg)
    ext = heart_extent_mm(p)
    cx, cy = heart_centres_scanner(p, g)
    x0, x1 = _heart_box(p, cfg, cfg.nx, cfg.dx_mm, cx, ext)
    y0, y1 = _heart_box(p, cfg, cfg.ny, cfg.dy_mm, cy, ext)
    out = np.zeros((len(phases), cfg.n_slices, cfg.ny, cfg.nx), dtype=np.uint8)
    if x1 <= x0 or y1 <= y0:
        return out
    x, y = body_coords(
        p, pixel_coords_mm(cfg.nx, cfg.dx_mm)[x0:x1], pixel_coords_mm(cfg.ny, cfg.dy_mm)[y0:y1]
    )
    out[:, :, y0:y1, x0:x1] = masks_to_labels(heart_masks(p, cfg, phases, x, y, labels_only=True))
    return out


def _ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float
) -> np.ndarray:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 < 1.0


def _paint(
    img: np.ndarray,
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    cx: float,
    cy: float,
    ax: float,
    ay: float,
    value: float,
    within: np.ndarray | None = None,
) -> None:
    """Set ``img`` (y, x) to ``value`` inside an ellipse, touching only its bounding box.

    ``x_mm``/``y_mm`` are increasing axes, or ``(y, x)`` grids of (rotated) positions.
    """
    if ax <= 0 or ay <= 0:
        return
    if x_mm.ndim == 2:
        inside = _ellipse(x_mm, y_mm, cx, cy, ax, ay)
        if within is not None:
            inside &= within
        img[inside] = value
        return
    i0, i1 = np.searchsorted(x_mm, [cx - ax, cx + ax])
    j0, j1 = np.searchsorted(y_mm, [cy - ay, cy + ay])
    if i1 <= i0 or j1 <= j0:
        return
    inside = _ellipse(x_mm[None, i0:i1], y_mm[j0:j1, None], cx, cy, ax, ay)
    if within is not None:
        inside &= within[j0:j1, i0:i1]
    img[j0:j1, i0:i1][inside] = value


def texture_factor(
    p: SubjectParams, group: str, x_mm: np.ndarray, y_mm: np.ndarray, z_mm: float
) -> np.ndarray:
    """Smooth multiplicative texture of one tissue group at body-frame positions.

    Real tissue is not piecewise constant (flow in the blood pool, fibre and fat
    content in muscle, coil-independent susceptibility effects): a few low-frequency
    plane waves per group, fixed to the body, vary its intensity by tens of percent.

    Args:
        group: one of ``TEXTURE_GROUPS``.
        x_mm: body-frame x, a ``(x,)`` axis or a ``(y, x)`` grid (see ``body_coords``).
        y_mm: body-frame y, a ``(y,)`` axis or a ``(y, x)`` grid.
        z_mm: long-axis position of the slice.

    Returns:
        ``(y, x)`` float32 factors (all ones without texture).
    """
    x = x_mm if x_mm.ndim == 2 else x_mm[None, :]
    y = y_mm if y_mm.ndim == 2 else y_mm[:, None]
    shape = np.broadcast_shapes(x.shape, y.shape)
    n = 5 * TEXTURE_WAVES
    g = TEXTURE_GROUPS.index(group)
    waves = p.texture[g * n : (g + 1) * n]
    if not waves:
        return np.ones(shape, dtype=np.float32)
    acc = np.zeros(shape, dtype=np.float64)
    for kx, ky, kz, phase, amp in zip(*(iter(waves),) * 5, strict=True):
        arg = 2.0 * np.pi * (kx * x.astype(np.float64) + ky * y + kz * z_mm) / 100.0
        acc += amp * np.cos(arg + phase)
    return np.exp(acc).astype(np.float32)


def static_tissue(
    p: SubjectParams, cfg: SimConfig, x_mm: np.ndarray, y_mm: np.ndarray
) -> np.ndarray:
    """Intensity of the non-cardiac anatomy in every slice.

    Args:
        x_mm: ``(x,)`` increasing scanner-frame sample positions.
        y_mm: ``(y,)`` increasing scanner-frame sample positions.

    Returns:
        ``(slices, y, x)`` float32 magnitudes (the mediastinum is soft tissue).
    """
    val = p.tissue()
    bx, by, cy = p.body_semi_x_mm, p.body_semi_y_mm, p.body_centre_y_mm
    f, m = p.fat_mm, p.muscle_mm
    base = np.zeros((y_mm.size, x_mm.size), dtype=np.float32)
    x_mm, y_mm = body_coords(p, x_mm, y_mm)
    _paint(base, x_mm, y_mm, 0.0, cy, bx, by, val["fat"])
    _paint(base, x_mm, y_mm, 0.0, cy, bx - f, by - f, val["muscle"])
    thorax = np.zeros(base.shape, dtype=bool)
    _paint(thorax, x_mm, y_mm, 0.0, cy, bx - f - m, by - f - m, True)
    base[thorax] = val["soft"]
    g = slice_geometry(p, cfg)
    spine_y = cy + by - 34.0
    out = np.empty((cfg.n_slices, *base.shape), dtype=np.float32)
    heart_r = p.lv_radius_mm + p.wall_mm + p.hypertrophy_mm
    ar = p.aorta_radius_mm
    for k, z in enumerate(cfg.slice_positions_mm()):
        img = base.copy()
        # Liver dome rises into the lower slices on the subject's right (image left).
        liver_s = float(np.clip((z - p.liver_start_mm) / 40.0, 0.0, 1.0))
        lung_s = 1.0 - 0.5 * liver_s
        hx, hy = float(g.cx[k]), float(g.cy[k])
        # (centre x, centre y, semi-axis x, semi-axis y, value), painted in order, inside the
        # thorax: lungs, the liver dome, then the mediastinum that keeps the lungs off the heart.
        organs = (
            (-0.55 * bx, cy - 6.0, 0.42 * bx * lung_s, 0.78 * by, val["lung"]),
            (0.55 * bx, cy - 2.0, 0.42 * bx, 0.76 * by * lung_s, val["lung"]),
            (-0.42 * bx, cy + 0.2 * by, 0.5 * bx * liver_s, 0.6 * by * liver_s, val["liver"]),
            (hx - 0.55 * heart_r, hy - 2.0, 1.3 * heart_r, 1.15 * heart_r + 4.0, val["soft"]),
        )
        for ox, oy, oax, oay, v in organs:
            _paint(img, x_mm, y_mm, ox, oy, oax, oay, v, thorax)
        for i in range(0, len(p.clutter), 5):
            ox, oy, oax, oay, v = p.clutter[i : i + 5]
            _paint(img, x_mm, y_mm, ox, oy, oax, oay, v, thorax)
        _paint(img, x_mm, y_mm, -5.0, cy - by + f + m + 4.0, 12.0, 5.0, val["bone"])  # sternum
        _paint(img, x_mm, y_mm, 0.0, spine_y, 15.0, 13.0, val["bone"])  # vertebra
        _paint(img, x_mm, y_mm, 0.0, spine_y + 19.0, 5.5, 5.5, val["csf"])  # spinal canal
        _paint(img, x_mm, y_mm, 20.0, spine_y - 20.0, ar, ar, val["blood"])  # descending aorta
        # Epicardial fat in the atrioventricular groove.
        _paint(img, x_mm, y_mm, hx - 0.2 * heart_r, hy - 1.05 * heart_r - 4.0, 9.0, 4.0, val["fat"])
        out[k] = img * texture_factor(p, "static", x_mm, y_mm, float(z)) if p.texture else img
    return out


def smooth_fields(p: SubjectParams, x_mm: np.ndarray, y_mm: np.ndarray) -> np.ndarray:
    """Intensity inhomogeneity times background phase: ``(y, x)`` complex64."""
    x = x_mm[None, :].astype(np.float64) / 100.0
    y = y_mm[:, None].astype(np.float64) / 100.0
    b = p.bias_coeffs
    bias = np.exp(b[0] * x + b[1] * y + b[2] * (x * x + y * y) + b[3] * x * y)
    q = p.phase_coeffs
    phase = q[0] + q[1] * x + q[2] * y + q[3] * (x * x - y * y) + q[4] * x * y
    return (bias * np.exp(1j * phase)).astype(np.complex64)


def _box_mean(a: np.ndarray, ss: int) -> np.ndarray:
    """Average ``ss x ss`` blocks of the last two axes."""
    if ss == 1:
        return a
    *lead, h, w = a.shape
    return a.reshape(*lead, h // ss, ss, w // ss, ss).mean(axis=(-3, -1))


def _tight_heart_box(p: SubjectParams, cfg: SimConfig, nx: int) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, x1, y0, y1)`` holding the heart of every phase on an ``nx``-wide grid.

    End-diastole and end-systole bound the cycle (contraction moves walls inwards;
    base descent brings wider tissue into the apical planes at end-systole), so the
    box holds both at pixel centres, RV wall included, plus two pixels.
    """
    g = slice_geometry(p, cfg)
    ext = heart_extent_mm(p)
    cx, cy = heart_centres_scanner(p, g)
    x0, x1 = _heart_box(p, cfg, nx, cfg.dx_mm, cx, ext)
    y0, y1 = _heart_box(p, cfg, cfg.ny, cfg.dy_mm, cy, ext)
    if x1 <= x0 or y1 <= y0:
        return 0, 0, 0, 0
    bx, by = body_coords(
        p, pixel_coords_mm(nx, cfg.dx_mm)[x0:x1], pixel_coords_mm(cfg.ny, cfg.dy_mm)[y0:y1]
    )
    m = heart_masks(p, cfg, [0, p.es_phase], bx, by)
    heart = (m.lv_cavity | m.lv_myo | m.rv_cavity | m.rv_wall).any(axis=(0, 1))
    rows, cols = np.flatnonzero(heart.any(axis=1)), np.flatnonzero(heart.any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    pad = 2
    return (
        max(x0 + int(cols[0]) - pad, 0),
        min(x0 + int(cols[-1]) + 1 + pad, nx),
        max(y0 + int(rows[0]) - pad, 0),
        min(y0 + int(rows[-1]) + 1 + pad, cfg.ny),
    )


def render_image(
    p: SubjectParams, cfg: SimConfig, phases: Sequence[int], oversampled: bool = False
) -> np.ndarray:
    """Anti-aliased complex phantom images.

    Args:
        p: subject parameters.
        cfg: configuration (grid, supersampling).
        phases: cardiac phases to render.
        oversampled: render the readout-oversampled field of view (``nx_os`` columns)
            instead of the reconstructed one (``nx`` columns).

    Returns:
        ``(phases, slices, ny, nx or nx_os)`` complex64 images.
    """
    phases = list(phases)
    ss = cfg.supersample
    nx = cfg.nx_os if oversampled else cfg.nx
    xs = pixel_coords_mm(nx, cfg.dx_mm, ss)
    ys = pixel_coords_mm(cfg.ny, cfg.dy_mm, ss)
    static = static_tissue(p, cfg, xs, ys)  # (S, Y*ss, X*ss)
    mag = np.broadcast_to(
        _box_mean(static, ss), (len(phases), *static.shape[:1], cfg.ny, nx)
    ).copy()
    x0, x1, y0, y1 = _tight_heart_box(p, cfg, nx)
    if x1 > x0 and y1 > y0:
        hx, hy = body_coords(p, xs[x0 * ss : x1 * ss], ys[y0 * ss : y1 * ss])
        m = heart_masks(p, cfg, phases, hx, hy)
        val = p.tissue()
        blood: np.ndarray = np.asarray(val["blood"], dtype=np.float32)
        myo: np.ndarray = np.asarray(val["myocardium"], dtype=np.float32)
        box = np.broadcast_to(
            static[None, :, y0 * ss : y1 * ss, x0 * ss : x1 * ss], m.lv_cavity.shape
        )
        if p.texture:
            zs = [float(z) for z in cfg.slice_positions_mm()]
            blood = np.stack([blood * texture_factor(p, "blood", hx, hy, z) for z in zs])
            myo = np.stack([myo * texture_factor(p, "myocardium", hx, hy, z) for z in zs])
        heart = np.where(
            (m.lv_cavity & ~m.papillary) | m.rv_cavity,
            blood,
            np.where(m.lv_myo | m.rv_wall | m.papillary, myo, box),
        )
        mag[:, :, y0:y1, x0:x1] = _box_mean(heart, ss)
    fields = smooth_fields(p, pixel_coords_mm(nx, cfg.dx_mm), pixel_coords_mm(cfg.ny, cfg.dy_mm))
    return (mag * fields).astype(np.complex64)
