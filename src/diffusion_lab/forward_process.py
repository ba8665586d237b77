"""The forward process q(x_t | x_0) and strided timestep lists, shared by training and sampling.

Below both the models (Part B's DDPM loss noises its training digits here) and the algorithms
(`schedule` builds the reverse step on the same `abar_at`), so neither imports the other.
Timesteps are 0-based indices into `alphas_cumprod` (abar), 0..T-1; t = -1 stands for clean data.
"""

from __future__ import annotations

import torch


def abar_at(alphas_cumprod: torch.Tensor, t: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """abar_t as a 0-dim tensor, with abar_{-1} = 1 (the step after the last timestep).

    Scalars are float32 0-dim tensors by default, combined in diffusers' order, because that makes
    our steps bit-equal to DDPMScheduler's; 0-dim CPU tensors act as scalars on any device and dtype.
    """
    return torch.ones((), dtype=dtype) if t < 0 else alphas_cumprod[t].to(dtype)


def add_noise(x0: torch.Tensor, eps: torch.Tensor, t: int | torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps   (DDPM eq. 4).

    Args:
        x0: (N, C, H, W) clean images in the data range (IF: [-1, 1]; MNIST: [0, 1]).
        eps: (N, C, H, W) standard normal noise.
        t: one timestep in [0, T) for the whole batch, or a (N,) integer tensor with one per image
            (training).
        alphas_cumprod: (T,) float64 abar_0..abar_{T-1}.

    Returns:
        x_t: (N, C, H, W) in x0's dtype.
    """
    if isinstance(t, torch.Tensor) and t.dim() > 0:
        picked = alphas_cumprod[t.cpu().long()].to(device=x0.device, dtype=x0.dtype)
        abar_t = picked.reshape(-1, *([1] * (x0.dim() - 1)))
    else:
        abar_t = abar_at(alphas_cumprod, int(t))
    return abar_t**0.5 * x0 + (1 - abar_t) ** 0.5 * eps


def strided_timesteps(start: int, stride: int, num_timesteps: int) -> list[int]:
    """start, start - stride, ..., ending at 0 (appended when stride does not divide start)."""
    if not 0 <= start < num_timesteps:
        raise ValueError(f"start must lie in [0, {num_timesteps}), got {start}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    timesteps = list(range(start, -1, -stride))
    if timesteps[-1] != 0:
        timesteps.append(0)
    return timesteps
