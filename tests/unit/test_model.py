"""k-MTR model: shapes, any mask, streaming split == batch path, no FFT on the k-space path."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from kmtr_stream.model import ImageModel, KMTRModel, ModelConfig
from kmtr_stream.model.kspace_encoder import KSpaceFrontend
from kmtr_stream.model.recon import zero_filled_rss

CFG = ModelConfig(n_coils=3, n_ky=16, n_kx=12, ny=16, nx=12, channels=(4, 8), latent_dim=16)


def _kspace(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n, CFG.n_coils, CFG.n_ky, CFG.n_kx)
    return torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g))


@pytest.fixture(scope="module")
def model() -> KMTRModel:
    torch.manual_seed(0)
    return KMTRModel(CFG, with_image_branch=False).eval()


def test_shapes(model: KMTRModel) -> None:
    mask = torch.rand(4, CFG.n_ky) < 0.5
    seg, lat = model(_kspace(4), mask)
    assert seg.shape == (4, 4, CFG.ny, CFG.nx)
    assert lat.shape == (4, CFG.latent_dim)
    ph, lg = model.subject(lat.reshape(1, 2, 2, -1), seg)
    assert ph.shape == (1, 9) and lg.shape == (1, 5)


@pytest.mark.parametrize("kind", ["single", "all", "random", "edge"])
def test_any_mask_runs(model: KMTRModel, kind: str) -> None:
    mask = torch.zeros(2, CFG.n_ky, dtype=torch.bool)
    if kind == "single":
        mask[:, CFG.n_ky // 2] = True
    elif kind == "all":
        mask[:] = True
    elif kind == "edge":
        mask[:, 0] = True
    else:
        mask = torch.rand(2, CFG.n_ky) < 0.3
        mask[:, 0] = True
    with torch.no_grad():
        seg, lat = model(_kspace(2), mask)
    assert torch.isfinite(seg).all() and torch.isfinite(lat).all()


def test_unacquired_lines_are_ignored(model: KMTRModel) -> None:
    k = _kspace(1)
    mask = torch.zeros(1, CFG.n_ky, dtype=torch.bool)
    mask[0, ::3] = True
    k2 = k.clone()
    k2[:, :, ~mask[0]] = 1e3  # garbage where nothing was acquired
    with torch.no_grad():
        a, b = model(k, mask), model(k2, mask)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])


@pytest.mark.parametrize("seed,coil_magnitude", [(0, False), (1, True), (2, True)])
def test_streaming_split_matches_batch_path(seed: int, coil_magnitude: bool) -> None:
    torch.manual_seed(seed)
    cfg = replace(CFG, coil_magnitude=coil_magnitude)
    model = KMTRModel(cfg, with_image_branch=False).eval()
    rng = np.random.default_rng(seed)
    mask_np = rng.random(CFG.n_ky) < 0.4
    mask_np[rng.integers(CFG.n_ky)] = True
    k = _kspace(1, seed)
    mask = torch.from_numpy(mask_np)[None]
    with torch.no_grad():
        seg_b, lat_b = model(k, mask)
        order = rng.permutation(np.flatnonzero(mask_np))  # lines arrive in any order
        tokens = torch.stack([model.encode_line(k[0, :, int(i), :]) for i in order])
        seg_s, lat_s = model.aggregate(tokens[None], torch.from_numpy(order)[None], mask)
    torch.testing.assert_close(seg_s, seg_b, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(lat_s, lat_b, atol=1e-4, rtol=1e-4)


def test_kspace_path_uses_no_fourier_transform(
    model: KMTRModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("FFT called on the k-space path")

    for name in ("fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "fftshift", "ifftshift"):
        monkeypatch.setattr(torch.fft, name, forbidden)
    with torch.no_grad():
        model(_kspace(1), torch.ones(1, CFG.n_ky, dtype=torch.bool))


def test_image_model_and_zero_filled_recon() -> None:
    torch.manual_seed(0)
    net = ImageModel(CFG).eval()
    k = _kspace(2)
    mask = torch.zeros(2, CFG.n_ky, dtype=torch.bool)
    mask[:, ::2] = True
    img = zero_filled_rss(k, mask)
    assert img.shape == (2, CFG.ny, CFG.nx) and (img >= 0).all()
    with torch.no_grad():
        seg, lat = net(img)
    assert seg.shape == (2, 4, CFG.ny, CFG.nx) and lat.shape == (2, CFG.latent_dim)


def test_zero_filled_rss_matches_numpy_reference() -> None:
    k = _kspace(1, 5)
    mask = torch.ones(1, CFG.n_ky, dtype=torch.bool)
    mask[0, 1::2] = False
    kn = k.numpy()[0] * mask.numpy()[0][None, :, None]
    ref = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kn, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    ref = np.sqrt((np.abs(ref) ** 2).sum(0)) / 0.5
    np.testing.assert_allclose(zero_filled_rss(k, mask)[0].numpy(), ref, rtol=1e-4, atol=1e-5)


def _fourier_frontend() -> KSpaceFrontend:
    torch.manual_seed(0)
    cfg = replace(CFG, coil_magnitude=True, frontend_init="fourier", n_kx=CFG.nx)
    return KSpaceFrontend(cfg)


def test_coil_magnitude_starts_as_zero_filled_rss() -> None:
    """At the Fourier start, transform 0's coil-combined channel is the zero-filled RSS."""
    fe = _fourier_frontend()
    k = _kspace(1, 3)[..., : CFG.nx]
    mask = torch.zeros(1, CFG.n_ky, dtype=torch.bool)
    mask[0, ::3] = True
    kn = k.numpy()[0] * mask.numpy()[0][None, :, None]
    ref = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kn, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    ref = np.sqrt((np.abs(ref) ** 2).sum(0))
    with torch.no_grad():
        tokens = fe.encode_lines(k.permute(0, 2, 1, 3))
        feat = fe.raw_features(*fe.mix_lines(tokens, None, mask))
    assert feat.shape == (1, CFG.n_transforms, 3 * CFG.n_coils + 1, CFG.ny, CFG.nx)
    np.testing.assert_allclose(feat[0, 0, -1].numpy(), ref, rtol=1e-3, atol=1e-4)


def test_coil_magnitude_ignores_each_coils_phase() -> None:
    fe = _fourier_frontend()
    k = _kspace(1, 4)[..., : CFG.nx]
    phase = torch.exp(1j * torch.tensor([0.3, 2.0, -1.2]))[None, :, None, None]
    mask = torch.ones(1, CFG.n_ky, dtype=torch.bool)
    with torch.no_grad():
        a = fe.raw_features(*fe.mix_lines(fe.encode_lines(k.permute(0, 2, 1, 3)), None, mask))
        kp = (k * phase).to(torch.complex64).permute(0, 2, 1, 3)
        b = fe.raw_features(*fe.mix_lines(fe.encode_lines(kp), None, mask))
    torch.testing.assert_close(a[:, :, -1], b[:, :, -1], atol=1e-4, rtol=1e-4)
    assert (a[:, :, 0] - b[:, :, 0]).abs().max() > 0.1  # the per-coil real part does change


def test_fresh_dense_align_probe_does_not_push_the_frontend() -> None:
    """A warm start gets a new (never exported) probe: it starts at zero, so the dense
    alignment loss sends no gradient into the trained frontend, yet the probe learns."""
    from torch.nn import functional as F

    from kmtr_stream.model.networks import normalise_image

    torch.manual_seed(0)
    cfg = ModelConfig(n_coils=2, n_ky=16, n_kx=16, ny=16, nx=16, channels=[4, 8, 8], latent_dim=8)
    net = KMTRModel(cfg, with_image_branch=True)
    k = torch.randn(3, 2, 16, 16, dtype=torch.complex64)
    m = torch.ones(3, 16, dtype=torch.bool)
    _, _, probe = net.forward_with_probe(k, m)
    assert torch.count_nonzero(probe) == 0
    image = torch.rand(3, 16, 16) + 0.5
    F.mse_loss(probe, normalise_image(image)).backward()
    assert net.probe is not None and net.probe.weight.grad is not None
    assert float(net.probe.weight.grad.abs().sum()) > 0
    for name, p in net.frontend.named_parameters():
        assert p.grad is None or float(p.grad.abs().sum()) == 0.0, name
