"""Figures of merit (Frechet distance, PSNR, SSIM, best blur) and the judge classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from diffusion_lab import blur, metrics
from diffusion_lab.blur import best_blur
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.mnist.judge import Judge, JudgeNet, train_judge
from diffusion_lab.mnist.training import seeded
from diffusion_lab.profiles import get_profile


def _features(n=2000, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim))
    return rng.normal(size=(n, dim)) @ mixing


# --- Frechet distance ----------------------------------------------------------------------------


def test_frechet_distance_of_a_set_with_itself_is_zero():
    feats = _features()
    assert metrics.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_a_shifted_set_is_the_squared_shift():
    feats = _features()
    shift = np.array([1.0, -2.0, 0, 0, 0, 0, 0, 0.5])
    assert metrics.frechet_distance(feats, feats + shift) == pytest.approx((shift**2).sum(), rel=1e-6)
    assert metrics.frechet_distance(feats, feats + 2 * shift) > metrics.frechet_distance(feats, feats + shift)


def test_frechet_distance_matches_the_scipy_sqrtm_formula():
    a, b = _features(seed=1), 1.3 * _features(seed=2) + 0.2
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real)
    assert metrics.frechet_distance(torch.tensor(a), torch.tensor(b)) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_is_finite_for_rank_deficient_features():
    feats = _features(n=50, dim=64)  # fewer samples than dimensions: singular covariances
    value = metrics.frechet_distance(feats, _features(n=50, dim=64, seed=5))
    assert math.isfinite(value) and value > 0


# --- PSNR and SSIM -------------------------------------------------------------------------------


def test_psnr_of_a_known_error():
    clean = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(metrics.psnr(clean + 0.1, clean), torch.full((3,), 20.0, dtype=torch.float64))
    assert metrics.psnr(clean[0] + 0.01, clean[0], data_range=2.0).item() == pytest.approx(10 * math.log10(4e4))
    assert metrics.psnr(clean, clean).isinf().all()


def _ssim_by_hand(x: np.ndarray, y: np.ndarray, size=11, sigma=1.5, data_range=1.0) -> float:
    """SSIM written window by window (Wang et al. 2004, eq. 13), for one grayscale image."""
    coords = np.arange(size) - (size - 1) / 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_the_windowed_definition():
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(1, 1, 16, 16, generator=generator)
    noisy = (clean + 0.2 * torch.randn(1, 1, 16, 16, generator=generator)).clamp(0, 1)
    expected = _ssim_by_hand(noisy[0, 0].double().numpy(), clean[0, 0].double().numpy())
    assert metrics.ssim(noisy, clean).item() == pytest.approx(expected, rel=1e-9)


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    clean = load_mnist().test_images[:4]
    assert torch.allclose(metrics.ssim(clean, clean), torch.ones(4, dtype=torch.float64))
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(clean.shape, generator=generator)
    mild, strong = metrics.ssim(clean + 0.1 * noise, clean), metrics.ssim(clean + 0.5 * noise, clean)
    assert (strong < mild).all() and (mild < 1).all()


# --- best Gaussian blur --------------------------------------------------------------------------


def test_best_gaussian_blur_beats_the_noisy_input_and_blurs_more_for_more_noise():
    clean = load_mnist().test_images[:32]
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    mild = best_blur(clean + 0.1 * noise, clean, (0.0, 1.0))
    strong = best_blur(clean + 0.8 * noise, clean, (0.0, 1.0))
    assert strong.psnr > metrics.psnr((clean + 0.8 * noise).clamp(0, 1), clean).mean().item() + 3
    assert strong.sigma > mild.sigma
    assert strong.psnr == pytest.approx(metrics.psnr(strong.image, clean).mean().item())


# --- the judge -----------------------------------------------------------------------------------


def test_the_tiny_judge_learns_mnist():
    data = load_mnist()
    recipe = get_profile("tiny").partb.judge
    result = train_judge(recipe, data, "cpu", seed=0, progress=False)
    judge = Judge(result.model, "cpu")
    accuracy = judge.accuracy(data.test_images[:2000], data.test_labels[:2000])
    assert accuracy > 0.6, accuracy  # chance is 0.1
    untrained = Judge(seeded(lambda: JudgeNet(recipe.channels, recipe.feature_dim), 0, "judge/init"), "cpu")
    assert untrained.accuracy(data.test_images[:2000], data.test_labels[:2000]) < 0.3
    feats = judge.features(data.test_images[:50])
    assert feats.shape == (50, recipe.feature_dim) and torch.isfinite(feats).all()
    reloaded = Judge.from_state_dict(recipe, result.model.state_dict())
    assert torch.equal(reloaded.features(data.test_images[:50]), feats)


@pytest.mark.parametrize("kernel_size, sigma", [(3, 0.5), (9, 1.5), (33, 2.0), (55, 6.0)])
def test_separable_blur_equals_torchvision_2d_blur(kernel_size, sigma):
    from torchvision.transforms.functional import gaussian_blur as torchvision_blur

    x = torch.rand(5, 3, 28, 30, generator=torch.Generator().manual_seed(kernel_size))
    torch.testing.assert_close(blur.gaussian_blur(x, kernel_size, sigma),
                               torchvision_blur(x, [kernel_size, kernel_size], [sigma, sigma]), rtol=0, atol=1e-5)


def test_blur_refuses_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        blur.gaussian_blur(torch.zeros(1, 1, 8, 8), 4, 1.0)
