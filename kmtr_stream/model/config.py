"""Architecture hyper-parameters of the k-MTR and image-domain models."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from kmtr_stream.errors import ConfigError

#: Padding modes of the trunk's 3x3 convolutions (``ModelConfig.padding``).
PADDING_MODES = ("zeros", "circular")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of every network part; stored beside the weights as JSON.

    Attributes:
        n_coils: virtual coils of the k-space input (coil compression output).
        n_ky: phase-encode lines of the recon matrix.
        n_kx: readout samples after oversampling removal.
        ny: rows of the output grid (segmentation resolution).
        nx: columns of the output grid.
        n_transforms: parallel learned complex transforms of the k-space frontend.
        channels: U-Net trunk channels per level, finest first.
        latent_dim: size of the shared slice latent.
        subject_layers: transformer layers of the subject-level head.
        subject_heads: attention heads of the subject-level head.
        n_phenotypes: regression outputs.
        n_classes_seg: segmentation classes (ACDC labels).
        n_classes_dx: disease classes.
        max_slices: largest slice count the subject head accepts.
        area_scale: factor on the per-slice label-area fractions fed to the subject head.
        fov_mm: field of view of the model's grid in mm (square; pixel ``fov_mm / nx``);
            the chain resamples every acquisition onto it in k-space.
        activation: trunk non-linearity, "relu" or "gelu" (GELU keeps a gradient where
            ReLU units die, the cause of the decoder switching off over the LV).
        frontend_init: initial k-space transforms, "random" or "fourier" (the learned
            maps start at the centred DFT basis of the grid, so training starts from
            features that are local in space; they are trained like every weight).
        context_dilations: dilations of the trunk's residual context block at its
            coarsest level (empty: none). It widens the receptive field past the
            distance between aliased copies; it starts as the identity, so a config
            that only adds it can continue from weights trained without it.
        norm_groups: GroupNorm groups of every trunk level. A trunk widened by a
            factor keeps its group size with this many times the groups, which is what
            lets ``model.widen`` carry narrower weights over unchanged.
        padding: how the trunk's 3x3 convolutions see past the grid's edge, "zeros" or
            "circular". A Fourier-encoded image is periodic (an equispaced acquisition's
            aliases wrap around the field of view), and with circular padding a circular
            shift of the input by a multiple of the trunk's downsampling (4 px for three
            levels) shifts the logits exactly and leaves the latent unchanged.
    """

    n_coils: int = 4
    n_ky: int = 64
    n_kx: int = 64
    ny: int = 64
    nx: int = 64
    n_transforms: int = 2
    channels: tuple[int, ...] = (16, 32, 64)
    latent_dim: int = 128
    subject_layers: int = 1
    subject_heads: int = 4
    n_phenotypes: int = 9
    n_classes_seg: int = 4
    n_classes_dx: int = 5
    max_slices: int = 32
    area_scale: float = 10.0
    fov_mm: float = 200.0
    activation: str = "relu"
    frontend_init: str = "random"
    coil_magnitude: bool = False
    context_dilations: tuple[int, ...] = ()
    norm_groups: int = 4
    padding: str = "zeros"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists)."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["context_dilations"] = list(self.context_dilations)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of ``to_dict``; unknown keys are a ConfigError."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown model config keys: {sorted(unknown)}")
        kwargs = dict(data)
        if "channels" in kwargs:
            kwargs["channels"] = tuple(int(c) for c in kwargs["channels"])
        if "context_dilations" in kwargs:
            kwargs["context_dilations"] = tuple(int(d) for d in kwargs["context_dilations"])
        cfg = cls(**kwargs)
        if cfg.activation not in ("relu", "gelu"):
            raise ConfigError(f"activation must be 'relu' or 'gelu', got {cfg.activation!r}")
        if cfg.frontend_init not in ("random", "fourier"):
            raise ConfigError(
                f"frontend_init must be 'random' or 'fourier', got {cfg.frontend_init!r}"
            )
        if cfg.padding not in PADDING_MODES:
            raise ConfigError(f"padding must be 'zeros' or 'circular', got {cfg.padding!r}")
        if cfg.norm_groups < 1:
            raise ConfigError(f"norm_groups must be >= 1, got {cfg.norm_groups}")
        if any(d < 1 for d in cfg.context_dilations):
            raise ConfigError(f"context_dilations must be >= 1, got {list(cfg.context_dilations)}")
        if cfg.ny % (2 ** (len(cfg.channels) - 1)) or cfg.nx % (2 ** (len(cfg.channels) - 1)):
            raise ConfigError(f"grid {cfg.ny}x{cfg.nx} not divisible by the U-Net's downsampling")
        return cfg
