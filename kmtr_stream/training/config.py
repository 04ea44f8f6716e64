"""Training configuration: a TOML file with [model], [data] and [train] tables."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from kmtr_stream.conventions import TEST_SEED
from kmtr_stream.errors import ConfigError
from kmtr_stream.model.config import ModelConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class DataConfig:
    """Simulated cohort used for training and validation.

    Attributes:
        n_train: training subjects (split "train").
        n_val: validation subjects (split "val"), also used for temperature scaling.
        seed: cohort seed passed to the simulator.
        n_virtual_coils: virtual coils after coil compression (= model n_coils).
        cache_dir: where the simulated cohort is cached as .npy shards.
        sim: overrides of the simulator's SimConfig fields.
        workers: processes that simulate the cohort when it is first cached.
    """

    n_train: int = 64
    n_val: int = 16
    seed: int = 0
    n_virtual_coils: int = 4
    cache_dir: str = "runs/cache"
    sim: dict[str, Any] = field(default_factory=dict)
    workers: int = 1


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings.

    Attributes:
        kind: "kmtr" (k-space model with image alignment branch) or "image"
            (image-domain baseline).
        image_input: for kind "image": "zero_filled" (recon-then-analyze) or "full".
        out_dir: run directory (checkpoints, metrics.jsonl, exported weights).
        seed: seed of initialisation, data order and masks.
        batch_size: subjects per step per process.
        lr: peak learning rate (AdamW, cosine decay after warm-up).
        weight_decay: AdamW weight decay.
        frontend_lr_scale: factor on ``lr`` for the learned k-space transforms of the
            frontend (no weight decay on them): at the full rate Adam moves every
            entry of the DFT-initialised maps by ~3 % a step and scrambles the
            spatial locality they start with.
        warmup_steps: linear warm-up steps.
        max_steps: optimisation steps.
        max_minutes: wall-clock budget; training stops at the first of the two.
        accel_min: smallest acceleration of the random masks.
        accel_max: largest acceleration.
        n_calib: fully sampled centre lines of each mask.
        mask_kinds: "equispaced" and/or "variable_density".
        orderings: acquisition orderings used for partial (prefix) masks.
        partial_prob: probability that a slice sees only a random prefix of its acquisition.
        shift_prob: probability that a subject is moved in the field of view (all its
            slices and phases alike) by a circular shift: a phase ramp on its k-space
            and the same roll of its image and labels (``kspace.pose``).
        shift_max_px: largest shift along each axis, in pixels of the grid.
        flip_prob: probability that a subject is mirrored left-right (all its slices
            and phases alike): its k-space mirrored along kx about DC, its image and
            labels along x (``kspace.pose.mirror_centred``); the heart seen from the
            other side, as scanners and file conventions also show it.
        w_seg, w_phen, w_dx, w_align: loss weights (w_align: InfoNCE latent alignment;
            0 drops the image branch).
        w_dense_align: weight of the dense alignment loss (training-only 1x1 probe of
            the k-space feature map regressed onto the fully sampled image).
        align_temperature: InfoNCE temperature.
        log_every: steps between metrics-log lines.
        val_every: steps between validation passes.
        ckpt_every: steps between checkpoints.
        threads: torch CPU threads.
        head_refit_epochs: epochs of the second stage that refits the subject head on
            frozen slice latents (``training.head_refit``); 0 = none.
        head_refit_subjects: training subjects whose features the refit uses.
        head_refit_keep: "better" keeps whichever head, refitted or end-to-end, has the
            lower subject-head loss on the val split; "refit" always keeps the refit.
        backend: torch.distributed backend when launched under torchrun.
        progress: show tqdm progress bars.
        init_weights: exported weights (a shipped name such as "default" or a file stem)
            that a fresh run starts from instead of a random initialisation: a second
            training stage on new subjects. Same kind and architecture; the phenotype
            standardisation is taken from them so the heads keep their units. A
            checkpoint of the run itself still takes precedence (resume).
        image_init_weights: for kind "kmtr": exported image weights (e.g. "upper", the
            image branch of the earlier run) that the image branch starts from.
        freeze_image_branch: for kind "kmtr" with ``image_init_weights``: keep the image
            branch fixed (no task losses, no updates, no head refit). The k-space model
            then aligns to a fixed fully sampled teacher, and a step skips the branch's
            backward pass.
    """

    kind: str = "kmtr"
    image_input: str = "zero_filled"
    out_dir: str = "runs/tiny"
    seed: int = 0
    batch_size: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    frontend_lr_scale: float = 1.0
    warmup_steps: int = 20
    max_steps: int = 100
    max_minutes: float = 0.0
    accel_min: float = 2.0
    accel_max: float = 12.0
    n_calib: int = 4
    mask_kinds: tuple[str, ...] = ("equispaced", "variable_density")
    orderings: tuple[str, ...] = ("linear", "centre-out")
    partial_prob: float = 0.2
    shift_prob: float = 0.0
    shift_max_px: int = 0
    flip_prob: float = 0.0
    w_seg: float = 1.0
    w_phen: float = 1.0
    w_dx: float = 0.5
    w_align: float = 0.2
    w_dense_align: float = 1.0
    align_temperature: float = 0.1
    log_every: int = 10
    val_every: int = 0
    ckpt_every: int = 0
    threads: int = 2
    head_refit_epochs: int = 0
    head_refit_subjects: int = 600
    head_refit_keep: str = "better"
    backend: str = "gloo"
    progress: bool = True
    init_weights: str = ""
    image_init_weights: str = ""
    freeze_image_branch: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """A whole training config."""

    model: ModelConfig
    data: DataConfig
    train: TrainSettings
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in checkpoints and weight metadata)."""
        return {
            "model": self.model.to_dict(),
            "data": asdict(self.data),
            "train": asdict(self.train),
        }


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(table) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    return cls(**kwargs)


def parse_config(data: dict[str, Any], source: str = "<dict>") -> TrainConfig:
    """Validate a parsed TOML mapping into a TrainConfig."""
    unknown = set(data) - {"model", "data", "train"}
    if unknown:
        raise ConfigError(f"{source}: unknown tables {sorted(unknown)}")
    model = ModelConfig.from_dict(dict(data.get("model", {})))
    dcfg: DataConfig = _build(DataConfig, dict(data.get("data", {})), f"{source} [data]")
    tcfg: TrainSettings = _build(TrainSettings, dict(data.get("train", {})), f"{source} [train]")
    if tcfg.kind not in ("kmtr", "image"):
        raise ConfigError(f"{source} [train] kind: expected 'kmtr' or 'image', got {tcfg.kind!r}")
    if tcfg.image_input not in ("zero_filled", "full"):
        raise ConfigError(f"{source} [train] image_input: expected 'zero_filled' or 'full'")
    if tcfg.head_refit_keep not in ("better", "refit"):
        raise ConfigError(
            f"{source} [train] head_refit_keep: expected 'better' or 'refit', "
            f"got {tcfg.head_refit_keep!r}"
        )
    if dcfg.n_virtual_coils != model.n_coils:
        raise ConfigError(f"{source}: [data] n_virtual_coils must equal [model] n_coils")
    if tcfg.kind == "kmtr" and tcfg.batch_size < 2 and tcfg.w_align > 0:
        raise ConfigError(f"{source} [train] batch_size: the alignment loss needs >= 2 subjects")
    if tcfg.freeze_image_branch and not (
        tcfg.kind == "kmtr" and tcfg.w_align > 0 and tcfg.image_init_weights
    ):
        raise ConfigError(
            f"{source} [train] freeze_image_branch: needs kind 'kmtr', w_align > 0 and "
            "image_init_weights (a frozen branch must start from trained weights)"
        )
    if not 1.0 <= tcfg.accel_min <= tcfg.accel_max:
        raise ConfigError(f"{source} [train]: need 1 <= accel_min <= accel_max")
    return TrainConfig(model=model, data=dcfg, train=tcfg, source=source)


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training TOML file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read training config {p}: {exc}") from exc
    return parse_config(data, str(p))


def evaluation_data_config(train_data: dict[str, Any], cache_dir: str,
                           seed: int = TEST_SEED) -> DataConfig:
    """The test cohorts' data settings for weights trained with ``train_data``: their
    coils and simulator settings, but the fixed test seed and the given cache."""
    return replace(DataConfig(**train_data), cache_dir=cache_dir, seed=seed)
