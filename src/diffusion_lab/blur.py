"""The classical baseline of section 1.2: Gaussian blur, with (kernel, sigma) chosen per image.

The chooser looks at the clean image, so it is an oracle: the best any Gaussian blur from the
grid can do, which is the fair thing to put next to the diffusion model's estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torchvision.transforms.functional import gaussian_blur as _tv_gaussian_blur

from diffusion_lab.metrics import psnr

KERNEL_SIZES = (3, 5, 7, 9, 11, 13, 15, 19, 25, 33)
SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def gaussian_blur(x: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Blur each channel of (N, C, H, W) with a kernel_size x kernel_size Gaussian (reflect padding)."""
    return _tv_gaussian_blur(x, [kernel_size, kernel_size], [sigma, sigma])


@dataclass(frozen=True)
class BlurChoice:
    kernel_size: int
    sigma: float
    psnr: float  # mean per-image dB against the clean images, after clamping to the data range
    image: torch.Tensor


def best_blur(
    noisy: torch.Tensor,
    clean: torch.Tensor,
    data_range: tuple[float, float],
    kernel_sizes: Sequence[int] = KERNEL_SIZES,
    sigmas: Sequence[float] = SIGMAS,
) -> BlurChoice:
    """The (kernel_size, sigma) of the grid whose blur of `noisy` has the best PSNR against `clean`.
    Kernels too large for reflect padding of the image are skipped."""
    low, high = data_range
    largest = 2 * (min(noisy.shape[-2:]) - 1) + 1
    best: BlurChoice | None = None
    for kernel_size in (k for k in kernel_sizes if k <= largest):
        for sigma in sigmas:
            image = gaussian_blur(noisy, kernel_size, sigma).clamp(low, high)
            score = psnr(image, clean, high - low).mean().item()
            if best is None or score > best.psnr:
                best = BlurChoice(kernel_size, sigma, score, image)
    if best is None:
        raise ValueError(f"no kernel size in {list(kernel_sizes)} fits a {tuple(noisy.shape[-2:])} image")
    return best
