"""Widening a trained trunk keeps the network's function and leaves its new channels trainable."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from kmtr_stream.errors import ConfigError
from kmtr_stream.model.config import ModelConfig
from kmtr_stream.model.networks import ImageModel, KMTRModel
from kmtr_stream.model.widen import widen_factor, widen_state_dict

NARROW = ModelConfig(
    n_coils=3, n_ky=32, n_kx=32, ny=32, nx=32, n_transforms=2, channels=(4, 8, 16),
    latent_dim=16, subject_heads=2, activation="gelu", frontend_init="fourier",
    coil_magnitude=True, context_dilations=(2, 4), norm_groups=2,
)


def _perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter moved off its initialisation (zero-initialised ones too)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model.eval()


def _widened(narrow: torch.nn.Module, cfg: ModelConfig, factor: int,
             kind: type[torch.nn.Module]) -> tuple[torch.nn.Module, ModelConfig]:
    wide_cfg = replace(cfg, channels=tuple(factor * c for c in cfg.channels),
                       norm_groups=factor * cfg.norm_groups)
    torch.manual_seed(5)
    wide = kind(wide_cfg)
    state = widen_state_dict(narrow.state_dict(), wide.state_dict(), cfg, wide_cfg)
    wide.load_state_dict(state)
    return wide.eval(), wide_cfg


@pytest.mark.parametrize("factor", [2, 3])
def test_widened_kmtr_model_computes_what_the_narrow_one_did(factor: int) -> None:
    narrow = _perturbed(KMTRModel(NARROW), seed=1)
    wide, _ = _widened(narrow, NARROW, factor, KMTRModel)
    assert wide.trunk.down[0][0].weight.shape[0] == factor * 4
    g = torch.Generator().manual_seed(2)
    k = torch.randn(5, 3, 32, 32, dtype=torch.complex64, generator=g)
    mask = torch.rand(5, 32, generator=g) < 0.4
    with torch.no_grad():
        seg_n, lat_n = narrow(k, mask)
        seg_w, lat_w = wide(k, mask)
        img = k.abs()[:, 0]
        iseg_n, ilat_n = narrow.image_branch(img)
        iseg_w, ilat_w = wide.image_branch(img)
    torch.testing.assert_close(seg_w, seg_n, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lat_w, lat_n, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(iseg_w, iseg_n, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ilat_w, ilat_n, atol=1e-5, rtol=1e-5)
    # the subject head sees the same latents and label areas, so it answers the same
    with torch.no_grad():
        lat = lat_n[:4].reshape(1, 2, 2, -1)
        ph_n, lg_n = narrow.subject(lat, seg_n[:4])
        ph_w, lg_w = wide.subject(lat_w[:4].reshape(1, 2, 2, -1), seg_w[:4])
    torch.testing.assert_close(ph_w, ph_n, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lg_w, lg_n, atol=1e-5, rtol=1e-5)


def test_widened_image_model_matches_and_its_new_channels_learn() -> None:
    narrow = _perturbed(ImageModel(NARROW), seed=3)
    wide, _ = _widened(narrow, NARROW, 2, ImageModel)
    x = torch.rand(4, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(wide(x)[0], narrow(x)[0], atol=1e-5, rtol=1e-5)
    # the zeroed connections from new channels into old ones get a gradient
    wide.train()
    seg, _ = wide(x)
    seg.square().mean().backward()
    w = wide.trunk.seg.weight
    assert w.grad is not None and w.grad[:, 4:].abs().sum() > 0
    assert not w[:, 4:].any()  # they start at zero


def test_widen_factor_refuses_what_is_not_one_uniform_widening() -> None:
    assert widen_factor(NARROW, replace(NARROW, channels=(8, 16, 32), norm_groups=4)) == 2
    with pytest.raises(ConfigError, match="one integer"):
        widen_factor(NARROW, replace(NARROW, channels=(8, 16, 48), norm_groups=4))
    with pytest.raises(ConfigError, match="one integer"):
        widen_factor(NARROW, replace(NARROW, channels=(8, 16, 32), norm_groups=2))
    with pytest.raises(ConfigError, match="one integer"):
        widen_factor(NARROW, replace(NARROW, channels=(6, 12, 24), norm_groups=3))
    with pytest.raises(ConfigError, match="not a widening"):
        widen_factor(NARROW, replace(NARROW, channels=(8, 16), norm_groups=4))
