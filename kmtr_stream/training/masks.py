"""Random undersampling masks for training: accelerations, kinds and acquisition prefixes."""

from __future__ import annotations

import numpy as np

from kmtr_stream.errors import ConfigError


def sample_mask(
    n_ky: int,
    rng: np.random.Generator,
    accel_min: float,
    accel_max: float,
    n_calib: int,
    kinds: tuple[str, ...],
    orderings: tuple[str, ...],
    partial_prob: float,
) -> np.ndarray:
    """One random training mask.

    The acceleration is drawn log-uniformly in ``[accel_min, accel_max]`` and rounded; with
    probability ``partial_prob`` only a random prefix (at least one line) of the
    acquisition order is kept, as a progressive trigger would see it.

    Args:
        n_ky: phase-encode lines.
        rng: NumPy generator (the only source of randomness).
        accel_min: smallest acceleration.
        accel_max: largest acceleration.
        n_calib: fully sampled centre lines.
        kinds: mask kinds to choose from ("equispaced", "variable_density").
        orderings: acquisition orderings for the prefix ("linear", "centre-out").
        partial_prob: probability of a prefix mask.

    Returns:
        ``(ky,)`` bool mask with at least one True.
    """
    from simulator import sampling

    # The simulator's masks take integer accelerations in 2..12.
    accel = int(np.clip(round(np.exp(rng.uniform(np.log(accel_min), np.log(accel_max)))), 2, 12))
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "equispaced":
        mask = sampling.equispaced_mask(n_ky, accel, n_calib, rng)
    elif kind == "variable_density":
        mask = sampling.variable_density_mask(n_ky, accel, n_calib, rng)
    else:
        raise ConfigError(f"unknown mask kind {kind!r}")
    mask = np.asarray(mask, dtype=bool)
    if partial_prob > 0 and rng.random() < partial_prob:
        order = np.asarray(sampling.line_order(mask, orderings[int(rng.integers(len(orderings)))]))
        keep = int(rng.integers(1, len(order) + 1))
        mask = np.zeros(n_ky, dtype=bool)
        mask[order[:keep]] = True
    if not mask.any():
        mask[n_ky // 2] = True
    return mask
