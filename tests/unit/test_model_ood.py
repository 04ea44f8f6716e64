"""Out-of-distribution score and the Fourier-initialised frontend, against NumPy references."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from kmtr_stream.model.config import ModelConfig
from kmtr_stream.model.kspace_encoder import KSpaceFrontend
from kmtr_stream.model.ood import (
    NO_CAVITY,
    SHAPE_REF_FLOOR,
    LatentStats,
    cavity_exposure,
    combined_score,
    fit_latent_stats,
    phenotype_disagreement,
    slice_scores,
    subject_exposure,
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


def _ring(ny: int = 16, cx: int = 8, cy: int = 8) -> np.ndarray:
    """A short-axis slice: LV cavity disc, myocardium ring around it, RV beside."""
    y, x = np.mgrid[:ny, :ny]
    r = np.hypot(y - cy, x - cx)
    lab = np.zeros((ny, ny), np.int64)
    lab[(r <= 5) & (x < 3)] = 1
    lab[r <= 4] = 2
    lab[r <= 2] = 3
    return lab


def _exposure_reference(lab: np.ndarray) -> float:
    """Loop-by-pixel reference: LV pixels with a 4-neighbour (periodic) of label 0 or 1."""
    ny, nx = lab.shape
    lv = exposed = 0
    for y in range(ny):
        for x in range(nx):
            if lab[y, x] != 3:
                continue
            lv += 1
            nbs = [lab[(y + 1) % ny, x], lab[(y - 1) % ny, x], lab[y, (x + 1) % nx],
                   lab[y, (x - 1) % nx]]
            exposed += any(v in (0, 1) for v in nbs)
    return exposed / lv


def test_cavity_exposure_is_zero_for_an_enclosed_cavity_and_matches_a_loop_reference() -> None:
    enclosed = _ring()
    assert float(cavity_exposure(enclosed[None])) == 0.0
    broken = enclosed.copy()
    broken[8, 6:9] = 0  # the wall opens: cavity pixels now touch background
    broken[2, 2:5] = 3  # and a stray cavity blob in the background
    want = _exposure_reference(broken)
    assert 0.0 < want < 1.0
    np.testing.assert_allclose(float(cavity_exposure(broken[None])), want)
    rng = np.random.default_rng(4)
    for _ in range(5):
        lab = rng.integers(0, 4, size=(12, 12))
        np.testing.assert_allclose(float(cavity_exposure(lab[None])), _exposure_reference(lab))


def test_cavity_exposure_averages_slices_with_a_cavity_and_flags_none_at_all() -> None:
    enclosed, empty = _ring(), np.zeros((16, 16), np.int64)
    open_ = enclosed.copy()
    open_[enclosed == 2] = 0  # no myocardium: every cavity edge pixel is exposed
    e = _exposure_reference(open_)
    # the empty slice (apex beyond the cavity) does not count
    np.testing.assert_allclose(cavity_exposure(np.stack([enclosed, open_, empty])), e / 2)
    assert float(cavity_exposure(np.stack([empty, empty]))) == NO_CAVITY
    # (subjects, phases, slices, ny, nx) -> (subjects,): the mean over the phases
    batch = np.stack([np.stack([enclosed[None], open_[None]]), np.stack([empty[None]] * 2)])
    np.testing.assert_allclose(subject_exposure(batch), [e / 2, NO_CAVITY])


def test_combined_score_adds_the_cavity_exposure_when_calibrated() -> None:
    rng = np.random.default_rng(1)
    stats = replace(fit_latent_stats(rng.standard_normal((100, 3))), phen_scale=np.ones(2),
                    latent_ref=1.0, agree_ref=1.0)
    net, seg = np.array([1.0, 1.0]), np.array([1.0, 1.0])
    enclosed = np.stack([_ring()[None]] * 2)  # (phases, slices, ny, nx)
    assert float(combined_score(stats, 1.0, net, seg, enclosed)) == 0.5  # not calibrated
    cal = replace(stats, shape_ref=0.02)
    assert float(combined_score(cal, 1.0, net, seg, enclosed)) == 1.0 / 3
    lost = np.zeros_like(enclosed)
    assert float(combined_score(cal, 1.0, net, seg, lost)) == (1.0 + NO_CAVITY / 0.02) / 3
    tiny = replace(stats, shape_ref=0.0)  # the floor keeps one exposed pixel from dominating
    assert float(combined_score(tiny, 1.0, net, seg, lost)) == (1.0 + 1.0 / SHAPE_REF_FLOOR) / 3
    assert LatentStats.from_json(cal.to_json()).shape_ref == 0.02
    assert LatentStats.from_json(stats.to_json()).shape_ref is None
