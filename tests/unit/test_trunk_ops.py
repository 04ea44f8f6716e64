"""The trunk's fast inference ops give what torch's generic ops give."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from kmtr_stream.model import trunk as trunk_module
from kmtr_stream.model.trunk import DilatedConv2d, UNetTrunk, seg_labels, upsample2x


def test_seg_labels_is_argmax_over_classes_with_first_maximum_on_ties() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 17, 23)
    assert torch.equal(seg_labels(logits), logits.argmax(dim=1))
    tied = torch.zeros(1, 4, 2, 2)
    tied[0, 1:, 0, 0] = 1.0  # classes 1, 2, 3 tie: the first wins
    tied[0, 3, 1, 1] = tied[0, 2, 1, 1] = 5.0
    assert seg_labels(tied).tolist() == [[[1, 0], [0, 2]]]


def test_upsample2x_matches_nearest_interpolation_and_its_gradient() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 3, 5, 7, requires_grad=True)
    y = torch.randn(2, 3, 10, 14)
    ref = F.interpolate(x, scale_factor=2.0, mode="nearest")
    got = upsample2x(x)
    assert torch.equal(got, ref)
    (g_ref,) = torch.autograd.grad((ref * y).sum(), x)
    (g_got,) = torch.autograd.grad((got * y).sum(), x)
    torch.testing.assert_close(g_got, g_ref)


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
@pytest.mark.parametrize("dilation", [1, 2, 8])
@pytest.mark.parametrize("batch", [1, 3])
def test_dilated_conv_matches_conv2d_in_inference_and_training(
    dilation: int, batch: int, padding_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN (mkldnn)")
    calls = []
    real = trunk_module._onednn_conv
    monkeypatch.setattr(trunk_module, "_onednn_conv", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(dilation)
    ref = nn.Conv2d(6, 5, 3, padding=dilation, dilation=dilation, padding_mode=padding_mode)
    fast = DilatedConv2d(6, 5, 3, padding=dilation, dilation=dilation, padding_mode=padding_mode)
    fast.load_state_dict(ref.state_dict())  # same parameters, same state dict
    x = torch.randn(batch, 6, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), ref(x), rtol=1e-5, atol=1e-5)
    assert calls == [1]  # inference went through oneDNN
    xg = x.clone().requires_grad_(True)
    out = fast(xg)  # autograd on: torch's own path, so training is unchanged
    assert out.requires_grad
    torch.testing.assert_close(out, ref(x), rtol=0, atol=0)
    assert calls == [1]


def test_trunk_labels_unchanged_by_the_fast_ops() -> None:
    torch.manual_seed(2)
    trunk = UNetTrunk(3, (4, 8, 16), 8, 4, activation="gelu", context_dilations=(2, 4, 8)).eval()
    for p in trunk.context.parameters():  # type: ignore[union-attr]
        nn.init.normal_(p, std=0.1)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fast, _ = trunk(x)
    with torch.enable_grad():
        slow, _ = trunk(x)  # generic path for the dilated convolutions
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-4, atol=1e-5)
