"""Figures of merit shared by Part A and Part B: Frechet distance in judge features, PSNR, SSIM.

Images are (N, C, H, W) (a single (C, H, W) image is treated as N = 1); per-image metrics
return (N,) float64 tensors so callers can average or plot a distribution.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def frechet_distance(feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray) -> float:
    """|| mu_a - mu_b ||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussian fits of two
    feature sets (N, F).

    tr((S_a S_b)^(1/2)) = tr((A S_b A)^(1/2)) with A = S_a^(1/2): the inner matrix is symmetric
    PSD, so symmetric eigendecompositions (eigenvalues clipped at 0) replace sqrtm of a
    non-symmetric product, which goes complex or NaN for rank-deficient covariances.
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, F) feature sets with the same F, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    sqrt_a = _psd_sqrt(cov_a)
    inner = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    distance = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)
    return max(distance, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def _batched(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x.unsqueeze(0) if x.dim() == 3 else x


def psnr(estimate: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """10 log10(data_range^2 / MSE) per image, (N,) float64; +inf for identical images."""
    estimate, reference = _batched(estimate).double(), _batched(reference).double()
    mse = ((estimate - reference) ** 2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean SSIM per image (Wang et al. 2004), (N,) float64: an 11x11 Gaussian window
    (sigma 1.5) over the valid region, per channel, then averaged over channels and pixels."""
    x, y = _batched(estimate).double(), _batched(reference).double()
    channels = x.shape[1]
    window = _gaussian_window(window_size, sigma).to(x.device)[None, None].repeat(channels, 1, 1, 1)

    def local_mean(z):
        return F.conv2d(z, window, groups=channels)

    mu_x, mu_y = local_mean(x), local_mean(y)
    sigma_xx = local_mean(x * x) - mu_x**2
    sigma_yy = local_mean(y * y) - mu_y**2
    sigma_xy = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_xx + sigma_yy + c2))
    return ssim_map.flatten(1).mean(dim=1)
