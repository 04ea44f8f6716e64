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
    groups = zf["4"]["segmentation"]["dice_by_contrast"]
    assert set(groups) == {"bright_blood", "dark_or_low"}
    assert sum(g["n"] for g in groups.values()) == 3


def test_blood_myocardium_contrast_on_known_maps() -> None:
    from kmtr_stream.metrics import blood_myocardium_contrast

    labels = np.zeros((3, 2, 8, 8), dtype=np.uint8)
    labels[:, :, 2:4, 2:4] = 3
    labels[:, :, 5:7, 5:7] = 2
    labels[2] = 0  # a subject without a heart
    image = np.where(labels == 3, 1.0, np.where(labels == 2, 0.25, 0.5))
    image[1] = np.where(labels[1] == 3, 0.2, np.where(labels[1] == 2, 0.6, 0.5))  # dark blood
    c = blood_myocardium_contrast(image, labels)
    assert c[0] == pytest.approx(0.6) and c[1] == pytest.approx(-0.5) and np.isnan(c[2])
    with pytest.raises(ValueError, match="differ"):
        blood_myocardium_contrast(image[:, :1], labels)


def test_plain_phantom_measures_its_own_bssfp_contrast() -> None:
    """The measured contrast of simulated subjects follows their tissue values."""
    from kmtr_stream.metrics import blood_myocardium_contrast
    from simulator.anatomy import TISSUE_INTENSITY
    from simulator.config import SimConfig
    from simulator.dataset import training_item

    cfg = SimConfig(randomize="none", snr=200.0)
    items = [training_item(i, 0, cfg) for i in range(2)]
    c = blood_myocardium_contrast(np.stack([it["image"] for it in items]),
                                  np.stack([it["labels"] for it in items]))
    b, m = TISSUE_INTENSITY["blood"], TISSUE_INTENSITY["myocardium"]
    # partial volume at the borders and the smooth bias field pull it a little towards 0
    assert np.all(np.abs(c - (b - m) / (b + m)) < 0.12), c
