"""Image-domain model: the LV cavity (label 3) is a class of its own from input to loss.

The shipped image-domain weights (recon baseline, fully sampled upper bound)
predict no LV cavity. These tests pin down that this is not a label-handling
fault of the image path: the network has a logit per ACDC label, the loss
rewards the LV cavity logit, and a freshly initialised image model fed through
the recon path learns the LV cavity of one simulated subject.
"""

from __future__ import annotations

import numpy as np
import torch

from kmtr_stream.model import ImageModel, ModelConfig
from kmtr_stream.model.heads import label_areas
from kmtr_stream.model.recon import zero_filled_rss
from kmtr_stream.training.losses import segmentation_loss
from kmtr_stream.training.step import slice_inputs

LV_CAVITY = 3
MYO = 2


def _labels(n: int = 2, size: int = 16) -> torch.Tensor:
    """``(n, size, size)`` label maps: an RV block, an LV cavity disk in a myocardium ring."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    r = torch.sqrt((yy - size / 2) ** 2 + (xx - size * 0.6) ** 2)
    lab = torch.zeros(size, size, dtype=torch.int64)
    lab[(xx < size // 4) & (yy > 3) & (yy < size - 3)] = 1
    lab[r < size / 4] = MYO
    lab[r < size / 6] = LV_CAVITY
    return lab.expand(n, -1, -1).clone()


def test_image_model_has_a_logit_and_an_area_per_label() -> None:
    cfg = ModelConfig(channels=(8, 16, 32), latent_dim=16, ny=32, nx=32)
    net = ImageModel(cfg).eval()
    with torch.no_grad():
        seg, _ = net(torch.rand(3, 32, 32))
    assert seg.shape == (3, 4, 32, 32)
    lab = _labels(1, 32)
    areas = label_areas(lab, seg.shape[1], 1.0)
    assert areas.shape == (1, 3)
    assert areas[0, 2] == (lab == LV_CAVITY).float().mean()


def test_slice_inputs_feed_image_models_the_configured_input() -> None:
    cfg = ModelConfig(n_coils=2, n_ky=16, n_kx=16, ny=16, nx=16, channels=(4, 8), latent_dim=8)
    torch.manual_seed(0)
    net = ImageModel(cfg).eval()
    k = torch.complex(torch.randn(3, 2, 16, 16), torch.randn(3, 2, 16, 16))
    mask = torch.rand(3, 16) < 0.5
    mask[:, 8] = True
    full = torch.rand(3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(slice_inputs(net, k, mask, full, "full")[0], net(full)[0])
        torch.testing.assert_close(
            slice_inputs(net, k, mask, full, "zero_filled")[0], net(zero_filled_rss(k, mask))[0]
        )


def test_segmentation_loss_treats_lv_cavity_as_its_own_class() -> None:
    lab = _labels()
    right = 8.0 * torch.nn.functional.one_hot(lab, 4).permute(0, 3, 1, 2).float()
    as_myo = (
        8.0
        * torch.nn.functional.one_hot(torch.where(lab == LV_CAVITY, MYO, lab), 4)
        .permute(0, 3, 1, 2)
        .float()
    )
    assert segmentation_loss(right, lab) < 0.01
    assert segmentation_loss(as_myo, lab) > 1.0
    logits = torch.zeros(2, 4, 16, 16, requires_grad=True)
    segmentation_loss(logits, lab).backward()
    assert logits.grad is not None
    # descending the loss raises the LV logit on LV pixels and lowers it elsewhere
    lv = lab == LV_CAVITY
    assert (logits.grad[:, LV_CAVITY][lv] < 0).all()
    assert (logits.grad[:, LV_CAVITY][~lv] > 0).all()


def test_image_model_learns_lv_cavity_through_recon_path() -> None:
    """Overfit one simulated subject (ED and ES, 8 slices) at 2x through the recon path."""
    from simulator.config import SimConfig
    from simulator.dataset import training_item

    item = training_item(0, 0, SimConfig(), n_virtual_coils=4)
    kspace = torch.from_numpy(item["kspace"]).reshape(-1, 4, 64, 64)
    labels = torch.from_numpy(item["labels"]).reshape(-1, 64, 64)
    mask = torch.zeros(kspace.shape[0], 64, dtype=torch.bool)
    mask[:, ::2] = True
    mask[:, 30:34] = True
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = ImageModel(ModelConfig(channels=(8, 16, 32), latent_dim=16))
    # zero-filled RSS input as in training, cropped to the 32 x 32 centre (the heart) for speed
    x = zero_filled_rss(kspace, mask)[:, 16:48, 16:48].contiguous()
    y = labels[:, 16:48, 16:48].contiguous()
    assert (y == LV_CAVITY).any()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(80):
        seg, _ = net(x)
        loss = segmentation_loss(seg, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = net(x)[0].argmax(dim=1).numpy()
    t = y.numpy()
    lv_pred, lv_true = pred == LV_CAVITY, t == LV_CAVITY
    dice = 2.0 * (lv_pred & lv_true).sum() / (lv_pred.sum() + lv_true.sum())
    assert dice > 0.5, f"LV cavity Dice {dice:.3f} after overfitting one subject"
    assert np.isfinite(loss.item())
