"""Out-of-distribution score and the Fourier-initialised frontend, against NumPy references."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from kmtr_stream.model.config import ModelConfig
from kmtr_stream.model.kspace_encoder import KSpaceFrontend
from kmtr_stream.model.ood import (
    LatentStats,
    combined_score,
    fit_latent_stats,
    phenotype_disagreement,
    slice_scores,
    subject_score,
)


def test_scores_are_one_in_distribution_and_grow_outside() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, 8)) * 0.3 + np.eye(8)
    train = rng.standard_normal((4000, 8)) @ a + 2.0
    stats = fit_latent_stats(train)
    held_out = rng.standard_normal((2000, 8)) @ a + 2.0
    inside = slice_scores(stats, held_out)
    assert abs(float(np.median(inside)) - 0.95) < 0.1  # ~sqrt(chi2_d / d), shrunk covariance
    assert float(slice_scores(stats, held_out + 3.0).mean()) > 2.0 * float(inside.mean())
    # Mahalanobis, not Euclidean: a step along a low-variance direction counts more.
    lo = np.linalg.eigh(np.cov(train, rowvar=False))[1][:, 0]
    hi = np.linalg.eigh(np.cov(train, rowvar=False))[1][:, -1]
    m = train.mean(axis=0)
    assert slice_scores(stats, m + 0.5 * lo) > slice_scores(stats, m + 0.5 * hi)


def test_stats_round_trip_through_json() -> None:
    rng = np.random.default_rng(1)
    stats = fit_latent_stats(rng.standard_normal((100, 5)), threshold=1.7)
    back = LatentStats.from_json(stats.to_json())
    z = rng.standard_normal((3, 4, 5))
    np.testing.assert_allclose(slice_scores(back, z), slice_scores(stats, z))
    assert back.threshold == 1.7
    assert subject_score(back, z) == float(slice_scores(stats, z).mean())


def _ifft2c(k: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=axes), norm="ortho"), axes=axes)


def test_fourier_init_starts_at_the_centred_inverse_dft() -> None:
    cfg = ModelConfig(n_coils=2, n_ky=16, n_kx=12, ny=16, nx=12, n_transforms=2,
                      channels=(8, 16), frontend_init="fourier")
    fe = KSpaceFrontend(cfg)
    rng = np.random.default_rng(2)
    k = (rng.standard_normal((1, 2, 16, 12)) + 1j * rng.standard_normal((1, 2, 16, 12)))
    mask = rng.random(16) < 0.5
    tokens = fe.encode_lines(torch.from_numpy(k.astype(np.complex64)).permute(0, 2, 1, 3))
    tr, ti = tokens[..., 0, :], tokens[..., 1, :]  # (b, ky, h, c, nx)
    keep = torch.from_numpy(mask.astype(np.float32))[None, :, None, None, None]
    wr, wi = fe.wy[..., 0], fe.wy[..., 1]
    fr = torch.einsum("hyl,blhcx->bhcyx", wr, tr * keep) - torch.einsum(
        "hyl,blhcx->bhcyx", wi, ti * keep)
    fi = torch.einsum("hyl,blhcx->bhcyx", wr, ti * keep) + torch.einsum(
        "hyl,blhcx->bhcyx", wi, tr * keep)
    ref = _ifft2c(k * mask[None, None, :, None])
    # Transform 0 starts exactly at the physics; the others are perturbed copies.
    got = (fr + 1j * fi)[:, 0].detach().numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert not np.allclose((fr + 1j * fi)[:, 1].detach().numpy(), ref, atol=1e-2)


def test_phenotype_disagreement_against_hand_arithmetic() -> None:
    scale = np.array([10.0, 5.0])
    net = np.array([[100.0, 50.0], [100.0, 50.0]])
    seg = np.array([[110.0, 50.0], [100.0, np.nan]])
    got = phenotype_disagreement(net, seg, scale)
    np.testing.assert_allclose(got, [np.sqrt(0.5), np.sqrt(100.0 / 2)])


def test_combined_score_weighs_both_signals_by_their_in_distribution_medians() -> None:
    rng = np.random.default_rng(0)
    stats = fit_latent_stats(rng.standard_normal((200, 3)))
    assert combined_score(stats, 2.0, None, None) == 2.0  # not calibrated: latent only
    cal = replace(stats, phen_scale=np.ones(2), latent_ref=2.0, agree_ref=0.5)
    consistent = combined_score(cal, 2.0, np.array([1.0, 1.0]), np.array([1.0, 1.5]))
    broken = combined_score(cal, 2.0, np.array([1.0, 1.0]), np.array([5.0, -3.0]))
    assert float(consistent) == np.sqrt(0.125) / 0.5 * 0.5 + 0.5
    assert float(broken) > 2 * float(consistent)
    back = LatentStats.from_json(cal.to_json())
    assert back.phen_scale is not None and back.agree_ref == 0.5 and back.latent_ref == 2.0
    old = {k: v for k, v in cal.to_json().items() if k in ("mean", "whiten", "threshold")}
    assert LatentStats.from_json(old).phen_scale is None
