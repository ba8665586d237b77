"""Part B with flow matching (the course's current Part B): the straight path from noise to a
digit, and the velocity losses of the time- and class-conditioned UNets.

Convention (the course's): x_0 ~ N(0, I) is noise, x_1 a digit in [0, 1], t ~ U[0, 1), and

    x_t = (1 - t) x_0 + t x_1,        the UNet u_theta(x_t, t) regresses   x_1 - x_0,

the velocity of that path, which does not depend on t. Sampling integrates dx/dt = u_theta(x, t)
from t = 0 (noise) to t = 1 (a digit): `diffusion_lab.flow_sampling`. The UNets are the DDPM
ones: they take t in [0, 1] where the DDPM feeds t / T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffusion_lab import seeding
from diffusion_lab.mnist.unet import one_hot


def interpolate(x_0: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x_0 + t x_1 for x_0, x_1 (N, ...) and t (N,) in [0, 1]."""
    t = t.to(x_1.dtype).view(-1, *([1] * (x_1.dim() - 1)))
    return (1.0 - t) * x_0 + t * x_1


def velocity_target(x_0: torch.Tensor, x_1: torch.Tensor) -> torch.Tensor:
    """d x_t / dt = x_1 - x_0, the regression target at every t."""
    return x_1 - x_0


TIME_DISTRIBUTIONS = ("uniform", "logit_normal")


def sample_times(batch_size: int, generator: torch.Generator, distribution: str = "uniform") -> torch.Tensor:
    """Training times t in [0, 1] on the CPU, (batch_size,) float32: "uniform" is the course's
    U[0, 1); "logit_normal" is sigmoid(N(0, 1)) (Esser et al. 2024), which spends more of the
    training on the middle of the path, where the velocity is hardest to predict."""
    if distribution == "uniform":
        return torch.rand(batch_size, generator=generator)
    if distribution == "logit_normal":
        return torch.sigmoid(torch.randn(batch_size, generator=generator))
    raise ValueError(f"time distribution must be one of {', '.join(TIME_DISTRIBUTIONS)}, got {distribution!r}")


def _noisy_pair(x_1: torch.Tensor, generator: torch.Generator,
                distribution: str = "uniform") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t, t, target) for a batch of digits x_1 (N, 1, 28, 28) in [0, 1]: t first, then x_0,
    both from `generator`, in that order."""
    t = sample_times(x_1.shape[0], generator, distribution)
    x_0 = seeding.randn(x_1.shape, generator, x_1.device)
    return interpolate(x_0, x_1, t.to(x_1.device)), t.to(x_1.device), velocity_target(x_0, x_1)


def time_conditioned_loss(model: torch.nn.Module, x_1: torch.Tensor, generator: torch.Generator,
                          time_distribution: str = "uniform") -> torch.Tensor:
    """|| (x_1 - x_0) - u_theta(x_t, t) ||^2, mean over pixels and batch; x_1 (N, 1, 28, 28) in [0, 1],
    t drawn from `time_distribution` (`sample_times`)."""
    x_t, t, target = _noisy_pair(x_1, generator, time_distribution)
    return F.mse_loss(model(x_t, t).float(), target)


def class_conditioned_loss(
    model: torch.nn.Module, x_1: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
    p_uncond: float = 0.1, time_distribution: str = "uniform",
) -> torch.Tensor:
    """As `time_conditioned_loss` with a one-hot class c (labels (N,) int64), zeroed with probability
    p_uncond so that the same network learns the unconditional velocity CFG needs."""
    x_t, t, target = _noisy_pair(x_1, generator, time_distribution)
    keep = (torch.rand(x_1.shape[0], generator=generator) >= p_uncond).float()
    c = (one_hot(labels.cpu(), model.num_classes) * keep[:, None]).to(x_1.device)
    return F.mse_loss(model(x_t, t, c).float(), target)
