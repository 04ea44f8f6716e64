"""Receive coil sensitivities: loop coils around the body with a Biot-Savart-like falloff."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.anatomy import SubjectParams
from simulator.config import SimConfig


@dataclass(frozen=True)
class CoilArray:
    """Loop coils placed on an ellipse around the body.

    Attributes:
        centres_mm: ``(coils, 3)`` loop centres (x, y, z).
        normals: ``(coils, 2)`` in-plane unit normals pointing into the body.
        radius_mm: ``(coils,)`` loop radii.
        phase_rad: ``(coils,)`` constant receiver phases.
    """

    centres_mm: np.ndarray
    normals: np.ndarray
    radius_mm: np.ndarray
    phase_rad: np.ndarray


def draw_coil_array(
    n_coils: int, p: SubjectParams, cfg: SimConfig, rng: np.random.Generator
) -> CoilArray:
    """Place ``n_coils`` loops around the body in two rows along z (anterior/posterior ring)."""
    angles = 2.0 * np.pi * (np.arange(n_coils) + 0.5) / n_coils + rng.uniform(-0.15, 0.15, n_coils)
    ax, ay = p.body_semi_x_mm + 12.0, p.body_semi_y_mm + 12.0
    x, y = ax * np.cos(angles), p.body_centre_y_mm + ay * np.sin(angles)
    z_mid = float(np.mean(cfg.slice_positions_mm()))
    z = z_mid + np.where(np.arange(n_coils) % 2 == 0, -20.0, 20.0) + rng.uniform(-5.0, 5.0, n_coils)
    # Inward normal of the ellipse at each loop.
    nx, ny = -np.cos(angles) / ax, -np.sin(angles) / ay
    norm = np.hypot(nx, ny)
    return CoilArray(
        centres_mm=np.stack([x, y, z], axis=1),
        normals=np.stack([nx / norm, ny / norm], axis=1),
        radius_mm=rng.uniform(55.0, 75.0, n_coils),
        phase_rad=rng.uniform(-np.pi, np.pi, n_coils),
    )


def coil_sensitivities(
    coils: CoilArray,
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    z_mm: np.ndarray,
    ref_xyz_mm: tuple[float, float, float],
) -> np.ndarray:
    """Smooth complex sensitivities of every coil on a grid.

    Magnitude follows the on-axis field of a current loop, ``a^3 / (a^2 + d^2)^1.5``
    with ``d`` the distance to the loop centre; the phase varies smoothly
    across the loop's tangent direction. Scaled so the root-sum-of-squares at
    ``ref_xyz_mm`` (the heart) is 1.

    Args:
        coils: the coil array.
        x_mm: ``(x,)`` positions.
        y_mm: ``(y,)`` positions.
        z_mm: ``(slices,)`` slice positions.
        ref_xyz_mm: point where the root-sum-of-squares is normalised to 1.

    Returns:
        ``(coils, slices, y, x)`` complex64 sensitivities.
    """

    def field(xx: np.ndarray, yy: np.ndarray, zz: np.ndarray) -> np.ndarray:
        c = coils.centres_mm[:, :, None, None, None]
        dx, dy, dz = xx - c[:, 0], yy - c[:, 1], zz - c[:, 2]
        a = coils.radius_mm[:, None, None, None]
        mag = a**3 / (a * a + dx * dx + dy * dy + dz * dz) ** 1.5
        # Tangent = normal rotated by 90 degrees; the phase winds gently along it. The
        # phase is linear in x and y, so its exponential factorises (cheaper than a full exp).
        ex = np.exp(-0.8j * coils.normals[:, 1, None, None, None] * dx / a)
        ey = np.exp(0.8j * coils.normals[:, 0, None, None, None] * dy / a)
        out: np.ndarray = mag * (np.exp(1j * coils.phase_rad)[:, None, None, None] * ex * ey)
        return out

    s = field(
        x_mm[None, None, :].astype(np.float32),
        y_mm[None, :, None].astype(np.float32),
        np.asarray(z_mm, dtype=np.float32)[:, None, None],
    )
    r = field(*(np.full((1, 1, 1), v) for v in ref_xyz_mm))
    rss = float(np.sqrt(np.sum(np.abs(r) ** 2)))
    return (s / rss).astype(np.complex64)
