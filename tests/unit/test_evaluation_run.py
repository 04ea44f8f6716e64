"""Cohort evaluation: the protocol masks, and R = 1 as every line acquired."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from kmtr_stream.evaluation.run import evaluate, evaluation_mask
from kmtr_stream.model.io import LoadedModel
from kmtr_stream.model.networks import ImageModel
from kmtr_stream.training.config import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("n_ky", [31, 64])
def test_evaluation_masks(n_ky: int) -> None:
    assert evaluation_mask(n_ky, 1, 4, "equispaced", 0).all()
    m4 = evaluation_mask(n_ky, 4, 4, "equispaced", 0)
    centre = n_ky // 2
    assert m4[centre - 2 : centre + 2].all()  # the calibration lines
    assert abs(int(m4.sum()) - (n_ky // 4 + 4)) <= 3
    # a fixed protocol: the same mask every call
    np.testing.assert_array_equal(m4, evaluation_mask(n_ky, 4, 4, "equispaced", 0))


def _image_model(image_input: str, net: ImageModel) -> LoadedModel:
    return LoadedModel(
        net=net, meta={"kind": "image", "image_input": image_input}, device=torch.device("cpu"),
        phen_mean=np.zeros(9), phen_std=np.ones(9), temperature=1.0,
    )


def test_r1_gives_the_zero_filled_model_the_fully_sampled_image(tmp_path: Path) -> None:
    """With every line acquired, recon's zero-filled RSS is the fully sampled image, so
    one network scored as recon (R = 1) and as the upper bound answers the same."""
    cfg = load_config(ROOT / "configs" / "train_tiny.toml")
    torch.manual_seed(0)
    net = ImageModel(cfg.model).eval()
    data = replace(cfg.data, cache_dir=str(tmp_path))
    out = evaluate(
        {"zero_filled": _image_model("zero_filled", net), "full": _image_model("full", net)},
        data, n_subjects=3, accelerations=[1, 4], progress=False, hd95_subjects=1,
    )
    zf, full = out["models"]["zero_filled"]["by_accel"], out["models"]["full"]["by_accel"]
    n_ky = cfg.model.n_ky
    assert zf["1"]["lines_acquired"] == n_ky and zf["4"]["lines_acquired"] < n_ky

    def outputs(r: dict) -> list[float]:  # continuous outputs: they move with any input change
        return [*r["phenotypes"]["mae"].values(), r["classification"]["ece"]]

    assert outputs(zf["1"]) == pytest.approx(outputs(full["1"]), rel=1e-4, abs=1e-5)
    assert outputs(zf["4"]) != pytest.approx(outputs(full["4"]), rel=1e-4, abs=1e-5)
