"""The training loop: data, masks, losses, DDP, AMP, checkpoints, metrics log, export."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from kmtr_stream.model.io import export_weights
from kmtr_stream.model.networks import ImageModel, KMTRModel, SliceModel
from kmtr_stream.training import distributed
from kmtr_stream.training.calibration import fit_temperature, nll
from kmtr_stream.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from kmtr_stream.training.config import TrainConfig, TrainSettings
from kmtr_stream.training.data import build_cohort, make_batch
from kmtr_stream.training.predict import predict_batch
from kmtr_stream.training.step import TrainStep


def build_model(cfg: TrainConfig) -> SliceModel:
    """Fresh network of the configured kind (seeded by the caller)."""
    if cfg.train.kind == "kmtr":
        return KMTRModel(cfg.model, with_image_branch=cfg.train.w_align > 0)
    return ImageModel(cfg.model)


def warm_start(model: SliceModel, st: TrainSettings) -> tuple[np.ndarray, np.ndarray] | None:
    """Load ``st.init_weights`` (and the image branch's) into ``model``.

    Returns the phenotype mean/std of the loaded weights, or None without
    ``init_weights``. A kind or architecture that differs is a ConfigError: a
    silent partial load would train from a half-random network. Two differences are
    allowed, both of which start as the weights' own function: a trunk grown by a
    context block (``context_dilations`` set here, empty in the weights), and a
    trunk widened by an integer factor (``channels`` and ``norm_groups``, see
    ``model.widen``). A change of the trunk's ``padding`` is allowed too: the weights are
    the same, and only what the convolutions see past the grid's edge changes.
    """
    from kmtr_stream.errors import ConfigError
    from kmtr_stream.model.io import TRAINING_ONLY, read_weights
    from kmtr_stream.model.widen import widen_factor, widen_state_dict

    pairs: list[tuple[str, SliceModel]] = []
    if st.init_weights:
        pairs.append((st.init_weights, model))
    if st.image_init_weights:
        branch = model.image_branch if isinstance(model, KMTRModel) else None
        if not isinstance(branch, ImageModel):
            raise ConfigError("[train] image_init_weights needs kind 'kmtr' with its image branch")
        pairs.append((st.image_init_weights, branch))
    stats: tuple[np.ndarray, np.ndarray] | None = None
    for name, target in pairs:
        src = read_weights(name, device="cpu")
        theirs, ours = src.net.cfg.to_dict(), target.cfg.to_dict()
        differ = {k: (theirs[k], ours[k]) for k in ours if theirs.get(k) != ours[k]}
        # Growing the trunk by a context block is allowed: it starts as the identity.
        grown = not theirs["context_dilations"] and "context_dilations" in differ
        if grown:
            del differ["context_dilations"]
        widened = "channels" in differ or "norm_groups" in differ
        if widened:
            widen_factor(src.net.cfg, target.cfg)  # ConfigError unless a true widening
            differ.pop("channels", None)
            differ.pop("norm_groups", None)
        differ.pop("padding", None)  # same weights; only the grid's edge is seen otherwise
        if src.kind != target.kind or differ:
            raise ConfigError(
                f"[train] warm start from {name!r}: its {src.kind} model is not this run's "
                f"{target.kind} model (field: weights' value, run's value) {differ}"
            )
        state = src.net.state_dict()
        if widened:
            ours_state = {k: v for k, v in target.state_dict().items()
                          if k in state or k.startswith("trunk.context.")}
            state = widen_state_dict(state, ours_state, src.net.cfg, target.cfg)
        missing, unexpected = target.load_state_dict(state, strict=False)
        new = ("trunk.context.",) if grown else ()
        left = [k for k in missing if not k.startswith(TRAINING_ONLY + new)]  # never exported
        if left or unexpected:
            raise ConfigError(f"[train] warm start from {name!r}: missing {left}, "
                              f"unexpected {unexpected}")
        if target is model:
            stats = (src.phen_mean.astype(np.float32), src.phen_std.astype(np.float32))
    return stats


def param_groups(model: torch.nn.Module, st: TrainSettings) -> list[dict[str, Any]]:
    """AdamW groups: the k-space transforms at ``frontend_lr_scale`` without decay."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    transforms = [p for n, p in named if n in ("frontend.wx", "frontend.wy")]
    ids = {id(p) for p in transforms}
    rest = [p for _, p in named if id(p) not in ids]
    groups: list[dict[str, Any]] = [{"params": rest, "weight_decay": st.weight_decay}]
    if transforms:
        groups.append(
            {"params": transforms, "lr": st.lr * st.frontend_lr_scale, "weight_decay": 0.0}
        )
    return groups


def lr_factor(step: int, warmup: int, total: int, time_frac: float = 0.0) -> float:
    """Linear warm-up then cosine decay to 5% of the peak.

    The decay follows whichever budget is further spent, steps or wall time
    (``time_frac``: elapsed / ``max_minutes``), so a run that a slower machine
    stops on time still ends at the low rate instead of mid-schedule.
    """
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, max((step - warmup) / max(1, total - warmup), time_frac))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t))


def step_indices(n: int, batch: int, step: int, seed: int, rank: int, world: int) -> np.ndarray:
    """Subject indices of ``step`` on ``rank`` via DistributedSampler (seeded per epoch)."""
    sampler: DistributedSampler[int] = DistributedSampler(
        list(range(n)),  # type: ignore[arg-type]
        num_replicas=world,
        rank=rank,
        shuffle=True,
        seed=seed,
        drop_last=True,
    )
    per_epoch = max(1, len(sampler) // batch)
    sampler.set_epoch(step // per_epoch)
    order = list(iter(sampler))
    pos = (step % per_epoch) * batch
    return np.asarray(order[pos : pos + batch], dtype=np.int64)


class Trainer:
    """Holds everything of one training run; ``run()`` trains to the end and exports."""

    def __init__(self, cfg: TrainConfig, resume: bool = True) -> None:
        self.cfg = cfg
        st = cfg.train
        torch.set_num_threads(st.threads)
        self.dist = distributed.setup(st.backend)
        self.out = Path(st.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        show = st.progress and self.dist.is_main
        if self.dist.is_main:
            self.train_set = build_cohort("train", cfg.data.n_train, cfg.data, show)
            self.val_set = build_cohort("val", cfg.data.n_val, cfg.data, show)
        distributed.barrier(self.dist)
        if not self.dist.is_main:
            self.train_set = build_cohort("train", cfg.data.n_train, cfg.data, False)
            self.val_set = build_cohort("val", cfg.data.n_val, cfg.data, False)
        self.phen_mean = self.train_set.phenotypes.mean(axis=0)
        self.phen_std = self.train_set.phenotypes.std(axis=0) + 1e-3
        torch.manual_seed(st.seed)
        self.model = build_model(cfg)
        stats = warm_start(self.model, st)
        if stats is not None:
            self.phen_mean, self.phen_std = stats
        frozen = self.model.image_branch if isinstance(self.model, KMTRModel) else None
        if st.freeze_image_branch and frozen is not None:
            frozen.requires_grad_(False)
        self.model.to(self.dist.device)
        self.step_module: torch.nn.Module = TrainStep(self.model, st)
        if self.dist.initialised:
            ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
            self.step_module = DistributedDataParallel(self.step_module, device_ids=ids)
        self.optimizer = torch.optim.AdamW(param_groups(self.model, st), lr=st.lr)
        # training seconds of earlier segments of a resumed run (the budget spans resumes)
        self.seconds_before = 0.0
        self._t0: float | None = None
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(s, st.warmup_steps, st.max_steps, self._time_frac()),
        )
        self.step = 0
        self.ckpt_dir = self.out / "checkpoints"
        stem = latest_checkpoint(self.ckpt_dir) if resume else None
        if stem is not None:
            meta = load_checkpoint(stem, self.model, self.optimizer, self.scheduler)
            self.step = int(meta["step"])
            self.seconds_before = float(meta.get("train_seconds", 0.0))

    def elapsed(self) -> float:
        """Training seconds so far, earlier segments of a resumed run included."""
        now = 0.0 if self._t0 is None else time.perf_counter() - self._t0
        return self.seconds_before + now

    def _time_frac(self) -> float:
        minutes = self.cfg.train.max_minutes
        return self.elapsed() / (60.0 * minutes) if minutes else 0.0

    def train_step(self) -> dict[str, float]:
        """One optimisation step (``self.step``); returns the scalar losses."""
        st, d = self.cfg.train, self.dist
        self.model.train()
        idx = step_indices(
            len(self.train_set), st.batch_size, self.step, st.seed, d.rank, d.world_size
        )
        rng = np.random.default_rng([st.seed, self.step, d.rank])
        batch = make_batch(self.train_set, idx, rng, st, self.phen_mean, self.phen_std).to(d.device)
        amp = d.device.type == "cuda"
        with torch.autocast(device_type=d.device.type, dtype=torch.bfloat16, enabled=amp):
            out = self.step_module(
                batch.kspace,
                batch.mask,
                batch.image,
                batch.labels,
                batch.phenotypes,
                batch.diagnosis,
            )
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return {k: float(v.detach()) for k, v in out.items()}

    def validate(
        self,
        accel: int = 4,
        mask_seed: int = 1234,
        net: SliceModel | None = None,
        image_input: str | None = None,
    ) -> dict[str, Any]:
        """Validation on the val split (fixed masks): Dice, phenotype MAE, accuracy, logits."""
        from kmtr_stream.metrics import dice_per_class

        st = self.cfg.train
        net = self.model if net is None else net
        image_input = st.image_input if image_input is None else image_input
        val_settings = type(st)(
            **{
                **asdict(st),
                "accel_min": accel,
                "accel_max": accel,
                "partial_prob": 0.0,
                "shift_prob": 0.0,
                "flip_prob": 0.0,
                "mask_kinds": ("equispaced",),
            }
        )
        net.eval()
        rng = np.random.default_rng(mask_seed)
        dices, maes, logits, targets = [], [], [], []
        for start in range(0, len(self.val_set), 8):
            idx = np.arange(start, min(start + 8, len(self.val_set)))
            batch = make_batch(self.val_set, idx, rng, val_settings, self.phen_mean, self.phen_std)
            pred = predict_batch(net, batch, image_input, self.dist.device)
            dices.append(dice_per_class(pred.labels, batch.labels.numpy(), 4))
            maes.append(np.abs(pred.phenotypes_std - batch.phenotypes.numpy()).mean(axis=1))
            logits.append(pred.logits)
            targets.append(batch.diagnosis.numpy())
        lg, tg = np.concatenate(logits), np.concatenate(targets)
        dice = np.concatenate(dices)
        return {
            "dice_rv": float(np.nanmean(dice[:, 0])),
            "dice_myo": float(np.nanmean(dice[:, 1])),
            "dice_lv": float(np.nanmean(dice[:, 2])),
            "phen_mae_std": float(np.concatenate(maes).mean()),
            "dx_acc": float((lg.argmax(1) == tg).mean()),
            "logits": lg,
            "targets": tg,
        }

    def _log(self, record: dict[str, Any]) -> None:
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")

    def checkpoint(self) -> None:
        """Save a resumable checkpoint of the current state (rank 0)."""
        if self.dist.is_main:
            save_checkpoint(
                self.ckpt_dir / f"step_{self.step:07d}",
                self.model,
                self.optimizer,
                self.scheduler,
                self.step,
                {"config": self.cfg.to_dict(), "train_seconds": round(self.elapsed(), 2)},
            )

    def run(self) -> Path:
        """Train to ``max_steps`` or ``max_minutes``, calibrate, export; returns weights stem."""
        st, main = self.cfg.train, self.dist.is_main
        self._t0 = time.perf_counter()
        bar = tqdm(
            total=st.max_steps,
            initial=self.step,
            desc=f"train {st.kind}",
            disable=not (st.progress and main),
        )
        while self.step < st.max_steps:
            if st.max_minutes and self.elapsed() / 60.0 > st.max_minutes:
                break
            losses = self.train_step()
            bar.update(1)
            bar.set_postfix(loss=f"{losses['loss']:.3f}")
            if main and (self.step % st.log_every == 0 or self.step == st.max_steps):
                self._log(
                    {
                        "step": self.step,
                        "lr": self.scheduler.get_last_lr()[0],
                        "elapsed_s": round(self.elapsed(), 2),
                        **losses,
                    }
                )
            if main and st.val_every and self.step % st.val_every == 0:
                v = self.validate()
                self._log(
                    {
                        "step": self.step,
                        "val": {k: x for k, x in v.items() if k not in ("logits", "targets")},
                    }
                )
            if st.ckpt_every and self.step % st.ckpt_every == 0:
                self.checkpoint()
        bar.close()
        self.checkpoint()
        stem = self.out / "model"
        if main and st.head_refit_epochs > 0:
            self.refit_heads()
        if main:
            stem = self.export(self.elapsed())
        distributed.barrier(self.dist)
        distributed.teardown(self.dist)
        return stem

    def refit_heads(self) -> None:
        """Second stage: refit the subject head(s) on frozen latents of training subjects;
        each keeps whichever head, refitted or end-to-end, has the lower val loss."""
        from kmtr_stream.training.head_refit import refit_subject_head, subject_features

        st = self.cfg.train
        idx = np.arange(min(st.head_refit_subjects, len(self.train_set)))
        nets: list[tuple[SliceModel, str]] = [(self.model, st.image_input)]
        teacher = self.model.image_branch if isinstance(self.model, KMTRModel) else None
        if isinstance(teacher, ImageModel) and not st.freeze_image_branch:
            nets.append((teacher, "full"))
        for i, (net, image_input) in enumerate(nets):
            rng = np.random.default_rng([st.seed, 10_000 + i])
            feats = subject_features(
                net,
                self.train_set,
                idx,
                st,
                image_input,
                rng,
                self.phen_mean,
                self.phen_std,
                self.dist.device,
            )
            branch = "kspace" if isinstance(net, KMTRModel) else image_input
            trained, choose = net.subject_head, st.head_refit_keep == "better"
            before = self._head_val_loss(net, image_input) if choose else 0.0
            record: dict[str, Any] = {
                "step": self.step,
                "head_refit": branch,
                **refit_subject_head(net, feats, st.head_refit_epochs, st.seed),
                "kept": "refit",
            }
            if choose:
                # A refit on a few hundred subjects can overfit them (late stages, whose
                # end-to-end head has converged): the head that validates better is kept.
                after = self._head_val_loss(net, image_input)
                record["val_head_loss"] = {"end_to_end": before, "refit": after}
                if after >= before:
                    net.subject_head = trained
                    record["kept"] = "end_to_end"
            self._log(record)

    def _head_val_loss(self, net: SliceModel, image_input: str) -> float:
        """Subject-head loss on the val split at 4x: phenotype MAE (standardised units)
        plus the diagnosis NLL at its best temperature."""
        v = self.validate(accel=4, net=net, image_input=image_input)
        t = fit_temperature(v["logits"], v["targets"])
        return float(v["phen_mae_std"] + nll(v["logits"], v["targets"], t))

    def _calibrate(self, net: SliceModel, image_input: str) -> tuple[float, dict[str, Any]]:
        logits, targets, v4 = [], [], {}
        # fully sampled input does not depend on the mask: one pass suffices
        for accel in (4,) if image_input == "full" else (2, 4, 8, 12):
            v = self.validate(accel=accel, net=net, image_input=image_input)
            logits.append(v["logits"])
            targets.append(v["targets"])
            if accel == 4:
                v4 = {k: x for k, x in v.items() if k not in ("logits", "targets")}
        temperature = fit_temperature(np.concatenate(logits), np.concatenate(targets))
        return temperature, v4

    def export(self, train_seconds: float) -> Path:
        """Fit the temperature on the val split (accelerations 2..12) and write the weights."""
        temperature, v4 = self._calibrate(self.model, self.cfg.train.image_input)
        meta: dict[str, Any] = {
            "image_input": self.cfg.train.image_input,
            "phenotype_mean": self.phen_mean.tolist(),
            "phenotype_std": self.phen_std.tolist(),
            "temperature": temperature,
            "normalisation": "k-space as produced by the chain (prewhitened, oversampling removed, "
            "coil-compressed, simulator-normalised); images scaled to unit mean",
            "training": {
                "config": self.cfg.to_dict(),
                "steps": self.step,
                "seconds": round(train_seconds, 1),
                "device": str(self.dist.device),
                "world_size": self.dist.world_size,
                "torch": torch.__version__,
            },
            "val_accel4": v4,
        }
        stem = self.out / "model"
        net = self.model
        export_weights(stem, net, meta)
        if isinstance(net, KMTRModel) and isinstance(net.image_branch, ImageModel):
            # The jointly trained image branch is the fully sampled upper bound.
            t_up, v_up = self._calibrate(net.image_branch, "full")
            upper_meta = {**meta, "image_input": "full", "temperature": t_up, "val_accel4": v_up}
            export_weights(self.out / "upper", net.image_branch, upper_meta)
        self._log({"step": self.step, "export": str(stem), "temperature": temperature})
        return stem


def train(cfg: TrainConfig, resume: bool = True) -> Path:
    """Train a model from a config; returns the stem of the exported weights."""
    return Trainer(cfg, resume=resume).run()
