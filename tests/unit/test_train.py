"""Training: a tiny real run learns every task, alignment decreases, resume, DDP (gloo, world 1)."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

from kmtr_stream.metrics import dice_per_class
from kmtr_stream.training.calibration import nll
from kmtr_stream.training.config import TrainConfig, load_config, parse_config
from kmtr_stream.training.data import make_batch
from kmtr_stream.training.loop import Trainer
from kmtr_stream.training.predict import predict_batch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TrainConfig:
    base = load_config(ROOT / "configs" / "train_tiny.toml")
    cache = tmp_path_factory.mktemp("cache")
    return replace(
        base,
        data=replace(base.data, n_train=8, n_val=4, cache_dir=str(cache)),
        train=replace(base.train, threads=2, progress=False, partial_prob=0.0, accel_max=3.0),
    )


def _with(cfg: TrainConfig, out: Path, **train: object) -> TrainConfig:
    return replace(cfg, train=replace(cfg.train, out_dir=str(out), **train))  # type: ignore[arg-type]


def test_tiny_run_beats_trivial_predictors(tiny: TrainConfig, tmp_path: Path) -> None:
    cfg = _with(
        tiny,
        tmp_path,
        max_steps=80,
        w_align=0.1,
        lr=1e-2,
        warmup_steps=3,
        head_refit_epochs=40,
        head_refit_subjects=8,
        head_refit_keep="refit",  # the refit itself is under test, not the choice on 4 val subjects
    )
    trainer = Trainer(cfg, resume=False)
    for _ in range(cfg.train.max_steps):
        trainer.train_step()
    trainer.refit_heads()  # second stage: subject head on frozen latents
    trainer.model.eval()
    ds = trainer.train_set
    # the training subjects under fresh masks of the training distribution
    batch = make_batch(
        ds,
        np.arange(len(ds)),
        np.random.default_rng(99),
        cfg.train,
        trainer.phen_mean,
        trainer.phen_std,
    )
    pred = predict_batch(trainer.model, batch, "zero_filled", torch.device("cpu"))
    # segmentation: all-background scores Dice 0 on every structure
    dice = np.nanmean(dice_per_class(pred.labels, batch.labels.numpy(), 4), axis=0)
    # phenotypes: the mean predictor's MAE on standardised targets
    target = batch.phenotypes.numpy()
    mean_mae = float(np.abs(target - target.mean(axis=0)).mean())
    mae = float(np.abs(pred.phenotypes_std - target).mean())
    # diagnosis: log loss of the class-frequency predictor
    dx = batch.diagnosis.numpy()
    prior = np.bincount(dx, minlength=5) / len(dx)
    prior_nll = float(-np.log(prior[dx]).mean())
    model_nll = nll(pred.logits, dx, 1.0)
    report = (
        f"dice={dice}, phen MAE {mae:.3f} vs {mean_mae:.3f}, NLL {model_nll:.3f} vs {prior_nll:.3f}"
    )
    assert dice.mean() > 0.2 and mae < mean_mae and model_nll < prior_nll, report


def test_alignment_loss_decreases(tiny: TrainConfig, tmp_path: Path) -> None:
    cfg = _with(
        tiny,
        tmp_path,
        max_steps=30,
        w_seg=0.0,
        w_phen=0.0,
        w_dx=0.0,
        w_dense_align=0.0,
        w_align=1.0,
        lr=3e-3,
        warmup_steps=1,
    )
    trainer = Trainer(cfg, resume=False)
    losses = [trainer.train_step()["align"] for _ in range(cfg.train.max_steps)]
    assert np.mean(losses[-6:]) < np.mean(losses[:6]) - 0.1, losses


def test_resume_reproduces_next_step(tiny: TrainConfig, tmp_path: Path) -> None:
    cfg = _with(tiny, tmp_path, max_steps=10)
    first = Trainer(cfg, resume=False)
    first.train_step()
    first.train_step()
    first.checkpoint()
    expected = first.train_step()
    resumed = Trainer(cfg, resume=True)
    assert resumed.step == 2
    got = resumed.train_step()
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-6, abs=1e-6)
    for (n1, p1), (_, p2) in zip(
        first.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(p1, p2, msg=n1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_gloo_world_size_one_matches_single_process(
    tiny: TrainConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    single = Trainer(_with(tiny, tmp_path / "single", max_steps=2), resume=False)
    expected = single.train_step()["loss"]
    for key, value in {
        "WORLD_SIZE": "1",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }.items():
        monkeypatch.setenv(key, value)
    cfg = _with(tiny, tmp_path / "ddp", max_steps=2, backend="gloo", val_every=0)
    trainer = Trainer(cfg, resume=False)
    try:
        assert trainer.dist.initialised and trainer.dist.world_size == 1
        assert isinstance(trainer.step_module, torch.nn.parallel.DistributedDataParallel)
        assert trainer.train_step()["loss"] == pytest.approx(expected, rel=1e-5)
    finally:
        from kmtr_stream.training import distributed

        distributed.teardown(trainer.dist)


def test_head_refit_keeps_the_head_that_validates_better(tiny: TrainConfig, tmp_path: Path) -> None:
    import json

    cfg = _with(tiny, tmp_path, max_steps=4, head_refit_epochs=3, head_refit_subjects=8)
    trainer = Trainer(cfg, resume=False)
    for _ in range(4):
        trainer.train_step()
    trainer.refit_heads()
    logs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    refits = [r for r in logs if "head_refit" in r]
    assert [r["head_refit"] for r in refits] == ["kspace", "full"]  # k-MTR and its image branch
    for rec, (net, inp) in zip(refits, [(trainer.model, "zero_filled"),
                                        (trainer.model.image_branch, "full")], strict=True):
        losses = rec["val_head_loss"]
        assert rec["kept"] == min(losses, key=losses.get)
        assert trainer._head_val_loss(net, inp) == pytest.approx(min(losses.values()), rel=1e-6)


def test_frontend_transforms_get_their_own_rate_without_decay(tiny: TrainConfig) -> None:
    from kmtr_stream.training.loop import build_model, param_groups

    st = replace(tiny.train, lr=1e-3, frontend_lr_scale=0.1, weight_decay=0.01)
    model = build_model(replace(tiny, train=st))
    groups = torch.optim.AdamW(param_groups(model, st), lr=st.lr).param_groups
    frontend = {id(model.frontend.wx), id(model.frontend.wy)}  # type: ignore[union-attr]
    assert {id(p) for p in groups[1]["params"]} == frontend
    assert groups[1]["lr"] == pytest.approx(1e-4) and groups[1]["weight_decay"] == 0.0
    assert groups[0]["lr"] == pytest.approx(1e-3) and groups[0]["weight_decay"] == 0.01
    n_all = sum(1 for _ in model.parameters())
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == n_all


def test_lr_decay_follows_the_further_spent_budget() -> None:
    from kmtr_stream.training.loop import lr_factor

    assert lr_factor(0, 10, 1000) == pytest.approx(0.1)
    assert lr_factor(10, 10, 1000) == pytest.approx(1.0)
    # a wall-time budget that is spent ends the schedule at the floor whatever the step
    assert lr_factor(100, 10, 1000, time_frac=1.0) == pytest.approx(0.05)
    assert lr_factor(1000, 10, 1000, time_frac=0.0) == pytest.approx(0.05)
    half = lr_factor(505, 10, 1000)
    assert lr_factor(100, 10, 1000, time_frac=0.5) == pytest.approx(half)


def test_time_budget_spans_resumes(tiny: TrainConfig, tmp_path: Path) -> None:
    cfg = _with(tiny, tmp_path, max_steps=10, max_minutes=60.0)
    first = Trainer(cfg, resume=False)
    first.seconds_before = 1800.0  # as if 30 of the 60 minutes were spent before
    first.checkpoint()
    resumed = Trainer(cfg, resume=True)
    assert resumed.elapsed() == pytest.approx(1800.0, abs=1.0)
    assert resumed._time_frac() == pytest.approx(0.5, abs=0.01)


def test_ood_calibration_stores_every_signal(tiny: TrainConfig, tmp_path: Path) -> None:
    from kmtr_stream.evaluation.robustness import subject_ood
    from kmtr_stream.model.io import read_weights
    from kmtr_stream.training.ood_calibration import calibrate_ood
    from kmtr_stream.training.predict import predict_cohort

    trainer = Trainer(_with(tiny, tmp_path, max_steps=3, head_refit_epochs=0), resume=False)
    for _ in range(3):
        trainer.train_step()
    stem = trainer.export(1.0)
    ood = calibrate_ood(read_weights(str(stem)), stem.with_suffix(".json"), n_train=8,
                        progress=False)
    assert len(ood["phen_scale"]) == 9 and ood["latent_ref"] > 0 and ood["agree_ref"] > 0
    assert 0.0 <= ood["shape_ref"] <= 1.0
    loaded = read_weights(str(stem))
    val = trainer.val_set
    mask = np.ones(tiny.model.n_ky, bool)
    pred = predict_cohort(loaded, val, mask, 4, loaded.phen_mean, loaded.phen_std)
    scores = subject_ood(loaded, pred, val.voxel_size_mm)
    assert scores.shape == (len(val),) and np.isfinite(scores).all()
    # a subject whose segmentation is wiped out scores higher than itself intact
    pred.labels[:] = 0
    assert (subject_ood(loaded, pred, val.voxel_size_mm) > scores).all()


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("train_*.toml")), ids=str)
def test_shipped_training_configs_load(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.train.max_steps > 0 and cfg.model.n_coils == cfg.data.n_virtual_coils


@pytest.mark.parametrize(
    "stage",
    ["", "_stage2", "_stage3", "_stage4", "_stage5", "_stage6", "_stage7", "_stage8", "_stage9",
     "_stage10", "_stage11"],
)
def test_kmtr_and_recon_recipes_differ_only_in_the_input_branch(stage: str) -> None:
    """The recon baseline trains with k-MTR's data, budget, augmentation and trunk."""
    k = load_config(ROOT / "configs" / f"train_default{stage}.toml")
    r = load_config(ROOT / "configs" / f"train_recon{stage}.toml")
    assert k.model == r.model and k.data == r.data
    own = {"kind", "image_input", "out_dir", "w_align", "w_dense_align", "threads",
           "init_weights", "image_init_weights", "freeze_image_branch"}
    kt, rt = k.train.__dict__, r.train.__dict__
    assert {f for f in kt if kt[f] != rt[f]} <= own


def _export_random(cfg: TrainConfig, stem: Path, seed: int) -> dict[str, torch.Tensor]:
    """Export a randomly initialised ``cfg`` network (and the kmtr run's image branch)."""
    from kmtr_stream.model.io import export_weights
    from kmtr_stream.model.networks import ImageModel, KMTRModel
    from kmtr_stream.training.loop import build_model

    torch.manual_seed(seed)
    net = build_model(cfg)
    meta = {"phenotype_mean": list(np.arange(9.0) + 1), "phenotype_std": [2.0] * 9}
    export_weights(stem, net, meta)
    if isinstance(net, KMTRModel) and isinstance(net.image_branch, ImageModel):
        export_weights(stem.with_name("image"), net.image_branch, meta)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_warm_start_loads_both_branches_and_their_units(tiny: TrainConfig, tmp_path: Path) -> None:
    source = _export_random(tiny, tmp_path / "src" / "model", seed=123)
    cfg = _with(tiny, tmp_path / "run", init_weights=str(tmp_path / "src" / "model"),
                image_init_weights=str(tmp_path / "src" / "image"))
    tr = Trainer(cfg, resume=False)
    state = tr.model.state_dict()
    for k, v in source.items():
        if not k.startswith("probe."):  # training-only, not exported
            assert torch.equal(state[k], v), k
    np.testing.assert_array_equal(tr.phen_mean, np.arange(9.0) + 1)
    np.testing.assert_array_equal(tr.phen_std, 2.0)
    fresh = Trainer(_with(tiny, tmp_path / "fresh"), resume=False)
    assert not torch.equal(fresh.model.state_dict()["trunk.seg.weight"], source["trunk.seg.weight"])


def test_a_frozen_image_branch_stays_the_teacher_while_the_kspace_model_learns(
    tiny: TrainConfig, tmp_path: Path
) -> None:
    source = _export_random(tiny, tmp_path / "src" / "model", seed=3)
    cfg = _with(tiny, tmp_path / "run", max_steps=3, warmup_steps=1, lr=3e-3,
                init_weights=str(tmp_path / "src" / "model"),
                image_init_weights=str(tmp_path / "src" / "image"), freeze_image_branch=True)
    tr = Trainer(cfg, resume=False)
    optimised = {id(p) for g in tr.optimizer.param_groups for p in g["params"]}
    branch = dict(tr.model.named_parameters())
    assert not any(id(p) in optimised for n, p in branch.items() if n.startswith("image_branch."))
    assert any(id(p) in optimised for n, p in branch.items() if n.startswith("trunk."))
    losses = [tr.train_step() for _ in range(3)]
    assert all("align" in x and "img_total" not in x for x in losses)
    state = tr.model.state_dict()
    for k, v in source.items():
        if k.startswith("image_branch."):
            assert torch.equal(state[k], v), k
    assert not torch.equal(state["trunk.seg.weight"], source["trunk.seg.weight"])
    from kmtr_stream.errors import ConfigError

    raw = tomllib.loads((ROOT / "configs" / "train_tiny.toml").read_text())
    raw["train"]["freeze_image_branch"] = True  # without image_init_weights: random teacher
    with pytest.raises(ConfigError, match="freeze_image_branch"):
        parse_config(raw, "frozen.toml")


def test_warm_start_grows_the_trunk_by_a_context_block(tiny: TrainConfig, tmp_path: Path) -> None:
    source = _export_random(tiny, tmp_path / "src" / "model", seed=7)
    grown = replace(tiny, model=replace(tiny.model, context_dilations=(2,)))
    cfg = _with(grown, tmp_path / "run", init_weights=str(tmp_path / "src" / "model"),
                image_init_weights=str(tmp_path / "src" / "image"))
    state = Trainer(cfg, resume=False).model.state_dict()
    for k, v in source.items():
        if not k.startswith("probe."):
            assert torch.equal(state[k], v), k
    new = [k for k in state if ".context." in k]
    assert new and {k.split(".context.")[0] for k in new} == {"trunk", "image_branch.trunk"}
    assert all(not state[k].any() for k in new if ".context.out." in k)  # starts as identity
    # the other way round (dropping a trained block) would lose weights: refused
    _export_random(grown, tmp_path / "big" / "model", seed=0)
    from kmtr_stream.errors import ConfigError

    with pytest.raises(ConfigError, match="context_dilations"):
        Trainer(_with(tiny, tmp_path / "r2", init_weights=str(tmp_path / "big" / "model")),
                resume=False)


def test_warm_start_widens_the_trunk_keeping_its_function(
    tiny: TrainConfig, tmp_path: Path
) -> None:
    _export_random(tiny, tmp_path / "src" / "model", seed=11)
    doubled = tuple(2 * c for c in tiny.model.channels)
    wide = replace(tiny, model=replace(tiny.model, channels=doubled,
                                       norm_groups=2 * tiny.model.norm_groups))
    cfg = _with(wide, tmp_path / "run", init_weights=str(tmp_path / "src" / "model"),
                image_init_weights=str(tmp_path / "src" / "image"))
    model = Trainer(cfg, resume=False).model.eval()
    from kmtr_stream.model.io import read_weights

    narrow = read_weights(str(tmp_path / "src" / "model")).net
    narrow_img = read_weights(str(tmp_path / "src" / "image")).net
    assert model.trunk.seg.weight.shape[1] == 2 * narrow.trunk.seg.weight.shape[1]
    n, m = tiny.model.n_ky, tiny.model.n_coils
    g = torch.Generator().manual_seed(0)
    k = torch.randn(3, m, n, n, dtype=torch.complex64, generator=g)
    mask = torch.rand(3, n, generator=g) < 0.5
    with torch.no_grad():
        for a, b in zip(model(k, mask), narrow(k, mask), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        img = k.abs()[:, 0]
        for a, b in zip(model.image_branch(img), narrow_img(img), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # narrowing would drop trained channels: refused, naming the fields
    from kmtr_stream.errors import ConfigError

    _export_random(wide, tmp_path / "big" / "model", seed=0)
    with pytest.raises(ConfigError, match="channels"):
        Trainer(_with(tiny, tmp_path / "r2", init_weights=str(tmp_path / "big" / "model")),
                resume=False)


def test_warm_start_may_switch_the_trunk_to_circular_padding(
    tiny: TrainConfig, tmp_path: Path
) -> None:
    """Same weights, other padding: every trained tensor is loaded as it was."""
    _export_random(tiny, tmp_path / "src" / "model", seed=5)
    circ = replace(tiny, model=replace(tiny.model, padding="circular"))
    cfg = _with(circ, tmp_path / "run", init_weights=str(tmp_path / "src" / "model"),
                image_init_weights=str(tmp_path / "src" / "image"))
    model = Trainer(cfg, resume=False).model.eval()
    from kmtr_stream.model.io import read_weights

    src = read_weights(str(tmp_path / "src" / "model")).net
    for k, v in src.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    assert model.cfg.padding == "circular" and src.cfg.padding == "zeros"


def test_warm_start_from_another_architecture_is_refused(tiny: TrainConfig, tmp_path: Path) -> None:
    from kmtr_stream.errors import ConfigError

    wide = replace(tiny, model=replace(tiny.model, latent_dim=tiny.model.latent_dim * 2))
    _export_random(wide, tmp_path / "wide" / "model", seed=0)
    cfg = _with(tiny, tmp_path / "run", init_weights=str(tmp_path / "wide" / "model"))
    d = tiny.model.latent_dim
    with pytest.raises(ConfigError, match=rf"'latent_dim': \({2 * d}, {d}\)"):
        Trainer(cfg, resume=False)


def test_evaluation_cohorts_use_the_fixed_test_seed_whatever_the_training_seed() -> None:
    from kmtr_stream.conventions import TEST_SEED
    from kmtr_stream.training.config import evaluation_data_config

    trained = {"n_train": 3200, "seed": 1, "n_virtual_coils": 4,
               "sim": {"randomize": "train"}, "cache_dir": "elsewhere"}
    data = evaluation_data_config(trained, "runs/cache")
    assert (data.seed, data.cache_dir) == (TEST_SEED, "runs/cache")
    assert data.n_virtual_coils == 4 and data.sim == {"randomize": "train"}
    assert evaluation_data_config(trained, "c", seed=5).seed == 5
