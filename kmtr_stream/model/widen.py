"""Function-preserving widening of a trained trunk (pure tensor surgery).

A trunk trained with ``channels = c`` and ``norm_groups = g`` is carried into one
with ``channels = f * c`` and ``norm_groups = f * g``: every old channel keeps its
position, its weights and its GroupNorm group (the group size ``c / g`` is kept),
and every connection from a new channel into an old one starts at zero. The
widened network therefore computes exactly what the narrow one did, while its new
channels (freshly initialised) give the optimiser room to learn more. Only the
trunk grows; the k-space frontend, the subject head and the probe keep their sizes.
"""

from __future__ import annotations

import torch

from kmtr_stream.errors import ConfigError
from kmtr_stream.model.config import ModelConfig


def widen_factor(old: ModelConfig, new: ModelConfig) -> int:
    """The integer factor from ``old`` to ``new``, or ConfigError when not a widening.

    A widening multiplies every level's channels and ``norm_groups`` by one integer
    factor and changes no other field (a context block may be added at the same time).
    """
    if len(old.channels) != len(new.channels) or old.channels[0] <= 0:
        raise ConfigError(f"channels {list(old.channels)} -> {list(new.channels)}: not a widening")
    f, rem = divmod(new.channels[0], old.channels[0])
    ok = rem == 0 and f >= 1 and all(n == f * o for o, n in zip(old.channels, new.channels,
                                                                strict=True))
    if not ok or new.norm_groups != f * old.norm_groups:
        raise ConfigError(
            f"channels {list(old.channels)} -> {list(new.channels)} with norm_groups "
            f"{old.norm_groups} -> {new.norm_groups}: a widening multiplies both by one integer"
        )
    return f


def _concat_map(old_first: int, old_total: int, new_first: int) -> torch.Tensor:
    """New positions of the old inputs of a concatenation ``cat(a, b)`` whose parts grew."""
    idx = torch.arange(old_total)
    return torch.where(idx < old_first, idx, idx - old_first + new_first)


def _input_map(key: str, n_old: int, old: ModelConfig, new: ModelConfig) -> torch.Tensor:
    """New positions of a weight's ``n_old`` old input channels (dim 1)."""
    if ".up." in key and key.endswith(".0.weight"):
        # Decoder input: cat(upsampled coarser level, skip of this level).
        level = int(key.split(".up.")[1].split(".")[0])
        c_low_old = old.channels[len(old.channels) - 1 - level]
        c_low_new = new.channels[len(new.channels) - 1 - level]
        return _concat_map(c_low_old, n_old, c_low_new)
    if key.endswith("trunk.latent.0.weight"):
        # Latent input: cat(mean over the map, max over the map) of the coarsest level.
        return _concat_map(old.channels[-1], n_old, new.channels[-1])
    return torch.arange(n_old)


def widen_state_dict(
    old_state: dict[str, torch.Tensor],
    new_state: dict[str, torch.Tensor],
    old: ModelConfig,
    new: ModelConfig,
) -> dict[str, torch.Tensor]:
    """Carry ``old_state`` into the shapes of ``new_state`` (a fresh widened model's).

    Args:
        old_state: state dict of the narrow model.
        new_state: state dict of a freshly initialised widened model (its new
            channels keep this initialisation).
        old: the narrow model's config.
        new: the widened model's config (``widen_factor(old, new)`` must hold).

    Returns:
        A state dict for the widened model that computes what ``old_state`` did.
    """
    widen_factor(old, new)
    out: dict[str, torch.Tensor] = {}
    for key, fresh in new_state.items():
        if key not in old_state:
            out[key] = fresh.clone()  # e.g. a context block added with the widening
            continue
        src = old_state[key]
        if tuple(src.shape) == tuple(fresh.shape):
            out[key] = src.clone()
            continue
        if src.dim() != fresh.dim() or any(a > b for a, b in zip(src.shape, fresh.shape,
                                                                  strict=True)):
            raise ConfigError(f"cannot widen {key}: {tuple(src.shape)} -> {tuple(fresh.shape)}")
        dst = fresh.clone()
        rows = torch.arange(src.shape[0])  # old outputs keep their positions
        if src.dim() >= 2 and src.shape[1] != fresh.shape[1]:
            cols = _input_map(key, src.shape[1], old, new)
            # New inputs never reach old outputs at the start.
            dst[rows] = 0.0
            dst[rows[:, None], cols[None, :]] = src
        else:
            dst[rows] = src
        out[key] = dst
    return out
