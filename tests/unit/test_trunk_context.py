"""Trunk context block: starts as the identity, widens the receptive field, config round trip."""

from __future__ import annotations

import pytest
import torch

from kmtr_stream.errors import ConfigError
from kmtr_stream.model import ModelConfig
from kmtr_stream.model.trunk import UNetTrunk

CH = (4, 8, 16)


def _trunk(dilations: tuple[int, ...], seed: int = 0) -> UNetTrunk:
    torch.manual_seed(seed)
    return UNetTrunk(2, CH, 8, 4, activation="gelu", context_dilations=dilations).eval()


def _reach(trunk: UNetTrunk, size: int = 64) -> int:
    """Largest row distance from which an input pixel moves the centre output pixel.

    GroupNorm's statistics couple every pixel to every other one, so it is taken
    out: what is left is the reach of the convolutions, the receptive field.
    """
    for name, mod in list(trunk.named_modules()):
        if isinstance(mod, torch.nn.GroupNorm):
            parent = trunk.get_submodule(name.rpartition(".")[0])
            setattr(parent, name.rpartition(".")[2], torch.nn.Identity())
    x = torch.randn(1, 2, size, size, requires_grad=True)
    seg, _ = trunk(x)
    seg[0, :, size // 2, size // 2].sum().backward()
    assert x.grad is not None
    rows = torch.nonzero(x.grad[0].abs().sum(dim=(0, 2)) > 0).flatten()
    return int((rows - size // 2).abs().max())


def test_grown_trunk_starts_as_the_plain_one() -> None:
    plain, grown = _trunk(()), _trunk((2, 4, 8), seed=1)
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("context.") for k in missing)
    x = torch.randn(3, 2, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain(x), grown(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_context_reaches_past_the_alias_distance_of_2x() -> None:
    plain, grown = _trunk(()), _trunk((2, 4, 8))
    for p in grown.context.parameters():  # type: ignore[union-attr]
        torch.nn.init.normal_(p, std=0.1)  # as after training: the residual is no longer zero
    # an equispaced 2x alias lies 32 rows away on the 64-row grid
    assert _reach(plain) < 32 <= _reach(grown)


def test_context_dilations_round_trip_and_are_checked() -> None:
    cfg = ModelConfig(context_dilations=(2, 4, 8))
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    legacy = {k: v for k, v in ModelConfig().to_dict().items() if k != "context_dilations"}
    assert ModelConfig.from_dict(legacy).context_dilations == ()  # weights saved before it
    with pytest.raises(ConfigError, match="context_dilations"):
        ModelConfig.from_dict({**cfg.to_dict(), "context_dilations": [0]})


def test_circular_padding_makes_the_trunk_shift_equivariant() -> None:
    """With circular padding a circular shift by a multiple of the downsampling (4 px for
    three levels) shifts the logits exactly and leaves the latent as it was; with zero
    padding the grid's edge breaks both."""
    x = torch.randn(2, 2, 32, 32)
    shifted = torch.roll(x, shifts=(8, -12), dims=(2, 3))
    for padding, equal in (("circular", True), ("zeros", False)):
        torch.manual_seed(0)
        trunk = UNetTrunk(2, CH, 8, 4, activation="gelu", context_dilations=(2, 4),
                          padding=padding).eval()
        with torch.inference_mode():
            seg, lat = trunk(x)
            seg_s, lat_s = trunk(shifted)
        rolled = torch.roll(seg, shifts=(8, -12), dims=(2, 3))
        assert torch.allclose(seg_s, rolled, atol=1e-5) is equal, padding
        assert torch.allclose(lat_s, lat, atol=1e-5) is equal, padding


def test_padding_is_checked_and_round_trips() -> None:
    with pytest.raises(ConfigError, match="padding must be"):
        ModelConfig.from_dict({"padding": "reflect"})
    cfg = ModelConfig.from_dict({"padding": "circular"})
    assert ModelConfig.from_dict(cfg.to_dict()).padding == "circular"
