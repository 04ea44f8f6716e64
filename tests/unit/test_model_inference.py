"""Inference gadgets, weight export/load, subject predictor, and the shipped weights."""

from __future__ import annotations

import time
from pathlib import Path

import ismrmrd
import numpy as np
import pytest
import torch

from kmtr_stream.cardiac import choose_ed_es, phenotypes_from_labels
from kmtr_stream.chain.gadget import ChainContext
from kmtr_stream.conventions import CLASSES, PHENOTYPES
from kmtr_stream.messages import SliceKSpace, SliceResult
from kmtr_stream.model import ImageModel, KMTRModel, ModelConfig, load_model, read_weights
from kmtr_stream.model.io import SHIPPED, WEIGHTS_DIR, export_weights
from kmtr_stream.model.predictor import SubjectPredictor
from tests.unit.chain_helpers import HEADER

CFG = ModelConfig(n_coils=2, n_ky=12, n_kx=10, ny=12, nx=10, channels=(4, 8), latent_dim=8)


def _meta() -> dict[str, object]:
    return {
        "phenotype_mean": [100.0] * 9,
        "phenotype_std": [10.0] * 9,
        "temperature": 2.0,
        "image_input": "zero_filled",
        "training": {},
    }


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    export_weights(root / "k", KMTRModel(CFG, with_image_branch=True), _meta())
    export_weights(root / "r", ImageModel(CFG), _meta())
    return {"kmtr": root / "k", "recon": root / "r"}


def _slice(s: int, p: int, rng: np.random.Generator, final: bool = True) -> SliceKSpace:
    k = (
        rng.normal(size=(CFG.n_coils, CFG.n_ky, CFG.n_kx))
        + 1j * rng.normal(size=(CFG.n_coils, CFG.n_ky, CFG.n_kx))
    ).astype(np.complex64)
    mask = np.zeros(CFG.n_ky, bool)
    mask[::3] = True
    k[:, ~mask] = 0
    return SliceKSpace(
        kspace=k,
        mask=mask,
        slice=s,
        phase=p,
        repetition=0,
        n_slices=3,
        n_phases=4,
        trigger="last_in_slice",
        final=final,
        last_in_measurement=False,
        voxel_size_mm=(2.0, 2.5, 10.0),
        t_last_line_ns=time.perf_counter_ns(),
    )


def test_export_drops_training_only_parts_and_round_trips(weights: dict[str, Path]) -> None:
    loaded = read_weights(str(weights["kmtr"]))
    assert isinstance(loaded.net, KMTRModel) and loaded.net.image_branch is None
    assert loaded.temperature == 2.0 and loaded.kind == "kmtr"
    assert read_weights(str(weights["recon"]) + ".safetensors").kind == "image"
    assert load_model(str(weights["kmtr"])) is load_model(str(weights["kmtr"]))


@pytest.mark.parametrize(
    ("gadget_type", "key"), [("kmtr_inference", "kmtr"), ("recon_inference", "recon")]
)
def test_inference_gadget_emits_label_image_and_slice_result(
    weights: dict[str, Path],
    gadget_type: str,
    key: str,
) -> None:
    from kmtr_stream.chain.registry import lookup

    cls = lookup(gadget_type)
    gadget = cls("g", cls.Params(model=str(weights[key])), ChainContext.for_stream(HEADER))
    msg = _slice(1, 2, np.random.default_rng(0))
    image, result = list(gadget.process(msg))
    assert isinstance(image, ismrmrd.Image) and isinstance(result, SliceResult)
    assert (
        image.data_type == ismrmrd.DATATYPE_SHORT and image.image_type == ismrmrd.IMTYPE_MAGNITUDE
    )
    assert (image.slice, image.phase) == (1, 2)
    assert tuple(image.matrix_size[:2]) == (CFG.nx, CFG.ny)
    assert tuple(round(float(v), 3) for v in image.field_of_view) == (20.0, 30.0, 10.0)
    assert result.labels.shape == (CFG.ny, CFG.nx) and result.labels.dtype == np.int16
    np.testing.assert_array_equal(image.data[0, 0], result.labels)
    assert result.latent.shape == (CFG.latent_dim,) and result.lines_used == 4
    assert result.timings_ms["post_last_line"] >= result.timings_ms["network"] > 0


def test_gadget_rejects_wrong_model_kind_and_shape(weights: dict[str, Path]) -> None:
    from kmtr_stream.chain.registry import lookup
    from kmtr_stream.errors import ConfigError, GadgetError

    cls = lookup("kmtr_inference")
    with pytest.raises(ConfigError, match="image"):
        cls("g", cls.Params(model=str(weights["recon"])), ChainContext.for_stream(HEADER))
    gadget = cls("g", cls.Params(model=str(weights["kmtr"])), ChainContext.for_stream(HEADER))
    msg = _slice(0, 0, np.random.default_rng(1))
    msg.kspace = msg.kspace[:1]
    with pytest.raises(GadgetError, match="coils"):
        list(gadget.process(msg))


def test_subject_predictor_picks_es_and_returns_all_outputs(weights: dict[str, Path]) -> None:
    from kmtr_stream.chain.registry import lookup

    cls = lookup("kmtr_inference")
    gadget = cls("g", cls.Params(model=str(weights["kmtr"])), ChainContext.for_stream(HEADER))
    rng = np.random.default_rng(2)
    results = [list(gadget.process(_slice(s, p, rng)))[1] for p in range(4) for s in range(3)]
    for r in results:  # make phase 2 the smallest LV
        r.labels[:] = 0
        r.labels[: 6 - (3 if r.phase == 2 else 0), :4] = 3
    assert choose_ed_es(results) == (0, 2)
    out = SubjectPredictor(read_weights(str(weights["kmtr"]))).predict(results)
    assert set(out["phenotypes"]) == set(PHENOTYPES)
    probs = out["diagnosis"]["probabilities"]
    assert set(probs) == set(CLASSES) and sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert out["diagnosis"]["class"] == max(probs, key=probs.__getitem__)
    assert (out["ed_phase"], out["es_phase"], out["n_slices"]) == (0, 2, 3)


def test_one_subject_result_uses_one_ed_es_pair_when_ed_phase_is_not_0(
    weights: dict[str, Path],
) -> None:
    from gadgets.subject_aggregation import SubjectAggregationGadget
    from kmtr_stream.chain.registry import lookup

    ctx = ChainContext.for_stream(HEADER)
    cls = lookup("kmtr_inference")
    gadget = cls("g", cls.Params(model=str(weights["kmtr"])), ctx)
    rng = np.random.default_rng(3)
    results = [list(gadget.process(_slice(s, p, rng)))[1] for p in range(4) for s in range(3)]
    rows = {0: 6, 1: 5, 2: 7, 3: 2}  # LV cavity rows per phase: ES is phase 3
    for r in results:
        r.labels[:] = 0
        r.labels[: rows[r.phase], :4] = 3
    predictor = SubjectPredictor(read_weights(str(weights["kmtr"])))
    agg = SubjectAggregationGadget("agg", SubjectAggregationGadget.Params(ed_phase=2), ctx)
    agg.predictor = predictor
    out = [m for r in results for m in agg.process(r)]
    (subject,) = [m for m in out if m.kind == "subject"]
    body = subject.body
    assert (body["ed_phase"], body["es_phase"]) == (2, 3)
    own = predictor.predict(results, ed_phase=2)
    assert (own["ed_phase"], own["es_phase"]) == (2, 3)
    assert body["phenotypes"] == pytest.approx(own["phenotypes"])
    assert body["diagnosis"]["probabilities"] == pytest.approx(own["diagnosis"]["probabilities"])
    # Phase 0 as ED (the predictor's old fixed choice) gives other network phenotypes.
    phase0 = predictor.predict(results)
    assert phase0["ed_phase"] == 0
    assert body["phenotypes"] != pytest.approx(phase0["phenotypes"])
    labels = np.zeros((4, 3, CFG.ny, CFG.nx), np.int16)
    for r in results:
        labels[r.phase, r.slice] = r.labels
    seg = phenotypes_from_labels(labels, (2.0, 2.5, 10.0), ed_phase=2, es_phase=3)
    assert body["phenotypes_from_segmentation"] == pytest.approx(seg)


def test_shipped_default_weights_load_and_run() -> None:
    for name in SHIPPED.values():
        assert (WEIGHTS_DIR / f"{name}.safetensors").exists(), name
        assert (WEIGHTS_DIR / f"{name}.safetensors").stat().st_size < 4_000_000
    loaded = load_model("default")
    cfg = loaded.net.cfg
    k = torch.randn(2, cfg.n_coils, cfg.n_ky, cfg.n_kx, dtype=torch.complex64)
    mask = torch.zeros(2, cfg.n_ky, dtype=torch.bool)
    mask[:, ::4] = True
    with torch.no_grad():
        seg, lat = loaded.net(k, mask)
    assert seg.shape == (2, 4, cfg.ny, cfg.nx) and torch.isfinite(lat).all()
    assert loaded.phen_mean.shape == (9,) and loaded.temperature > 0
