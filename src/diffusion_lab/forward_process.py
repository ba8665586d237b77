"""The forward process q(x_t | x_0), its marginal's moments (`MatchedStart`) and strided timestep
lists, shared by training and sampling.

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


class MatchedStart:
    """Where to start sampling when the schedule's last timestep still holds signal.

    q(x_t) = E_x0 N(sqrt(abar_t) x0, (1 - abar_t) I) has mean sqrt(abar_t) mu and covariance
    abar_t Sigma + (1 - abar_t) I, for the data's mean mu and covariance Sigma. The course's schedule
    (T = 300, betas linear to 0.02) ends at abar_T = 0.048: x_T keeps sqrt(0.048) = 22% of the digit,
    while the sampling loop starts from N(0, I). Called on that start's draw eps ~ N(0, I), this
    returns x_t = sqrt(abar_t) mu + L eps with L L^T = abar_t Sigma + (1 - abar_t) I: a draw from the
    Gaussian with q(x_t)'s first two moments, made from the same eps, so the loop's draws stay as
    they were. At abar_t = 0 it returns eps itself.
    """

    def __init__(self, images: torch.Tensor):
        """images: (N, C, H, W) training images in the model's data range, N >= 2."""
        if images.dim() != 4 or images.shape[0] < 2:
            raise ValueError(f"MatchedStart needs (N, C, H, W) images with N >= 2, got shape {tuple(images.shape)}")
        flat = images.reshape(images.shape[0], -1).to(torch.float64)
        self.image_shape = tuple(images.shape[1:])
        self.mean = flat.mean(0)  # (D,), D = C * H * W
        self.covariance = torch.cov(flat.T)  # (D, D)

    def scale(self, abar_t: float) -> torch.Tensor:
        """L (D, D), lower triangular, with L L^T = abar_t Sigma + (1 - abar_t) I."""
        if not 0.0 <= abar_t <= 1.0:
            raise ValueError(f"abar_t must lie in [0, 1], got {abar_t}")
        eye = torch.eye(self.covariance.shape[0], dtype=torch.float64)
        # The identity term keeps it positive definite for abar_t < 1; at 1 Sigma alone may be singular
        # (MNIST's corner pixels never vary), so a negligible jitter keeps the factorization defined.
        return torch.linalg.cholesky(abar_t * self.covariance + max(1.0 - abar_t, 1e-10) * eye)

    def __call__(self, eps: torch.Tensor, abar_t: float) -> torch.Tensor:
        """x_t (N, C, H, W) in eps's dtype and device, from eps (N, C, H, W) ~ N(0, I)."""
        if tuple(eps.shape[1:]) != self.image_shape:
            raise ValueError(f"eps must be (N, {', '.join(map(str, self.image_shape))}), got {tuple(eps.shape)}")
        flat = eps.reshape(eps.shape[0], -1).to("cpu", torch.float64)
        x = abar_t**0.5 * self.mean + flat @ self.scale(abar_t).T
        return x.reshape(eps.shape).to(device=eps.device, dtype=eps.dtype)
