"""Part B with flow matching (the course's current Part B): the straight path from noise to a
digit, and the velocity losses of the time- and class-conditioned UNets.

Convention (the course's): x_0 ~ N(0, I) is noise, x_1 a digit in [0, 1], t ~ U[0, 1), and

    x_t = (1 - t) x_0 + t x_1,        the UNet u_theta(x_t, t) regresses   x_1 - x_0,

the velocity of that path, which does not depend on t. Sampling integrates dx/dt = u_theta(x, t)
from t = 0 (noise) to t = 1 (a digit): `diffusion_lab.flow_sampling`. The UNets are the DDPM
ones: they take t in [0, 1] where the DDPM feeds t / T.

The losses come in two phases, as the DDPM's do: `draw_flow_batch` (every random draw, from the
explicit CPU generator) and `flow_loss_from` (the arithmetic on the model's device, which never
waits for the host); `time_conditioned_loss` and `class_conditioned_loss` run the two in a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from diffusion_lab import seeding
from diffusion_lab.mnist.class_dropout import draw_keep_mask, dropped_one_hot


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


@dataclass(frozen=True)
class FlowDraws:
    """One batch's draws for the velocity loss, N rows each (`draw_flow_batch`).

    t: (N,) float32 in [0, 1], from the recipe's time distribution (`sample_times`).
    noise: x_0 (N, 1, 28, 28) float32 ~ N(0, I).
    keep: (N,) float32 class-dropout mask (`class_dropout.draw_keep_mask`); None for the time model.
    """

    t: torch.Tensor
    noise: torch.Tensor
    keep: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> FlowDraws:
        return FlowDraws(**{name: None if value is None else value.to(device) for name, value in vars(self).items()})


def draw_flow_batch(shape: torch.Size, generator: torch.Generator, p_uncond: float | None = None,
                    time_distribution: str = "uniform") -> FlowDraws:
    """The host phase of the velocity loss for a batch of `shape` (N, 1, 28, 28): from `generator`,
    in this order, t, x_0, then (p_uncond given: the class model) the dropout mask. CPU tensors."""
    t = sample_times(shape[0], generator, time_distribution)
    noise = seeding.randn(shape, generator)
    keep = draw_keep_mask(shape[0], generator, p_uncond) if p_uncond is not None else None
    return FlowDraws(t, noise, keep)


def flow_loss_from(model: torch.nn.Module, x_1: torch.Tensor, labels: torch.Tensor | None,
                   draws: FlowDraws) -> torch.Tensor:
    """The device phase of the velocity loss: || (x_1 - x_0) - u_theta(x_t, t [, c]) ||^2, mean over
    pixels and batch; x_1 (N, 1, 28, 28) in [0, 1], labels (N,) int64 (the class model, `draws.keep`
    set; else unused), `draws` on x_1's device. Never waits for the host, so a CUDA graph can capture it."""
    x_0, t = draws.noise, draws.t
    inputs = (interpolate(x_0, x_1, t), t)
    if draws.keep is not None:
        inputs += (dropped_one_hot(labels, draws.keep, model.num_classes),)
    return F.mse_loss(model(*inputs).float(), velocity_target(x_0, x_1))


def time_conditioned_loss(model: torch.nn.Module, x_1: torch.Tensor, generator: torch.Generator,
                          time_distribution: str = "uniform") -> torch.Tensor:
    """|| (x_1 - x_0) - u_theta(x_t, t) ||^2, mean over pixels and batch; x_1 (N, 1, 28, 28) in [0, 1],
    t drawn from `time_distribution` (`sample_times`), then x_0 ~ N(0, I)."""
    draws = draw_flow_batch(x_1.shape, generator, None, time_distribution)
    return flow_loss_from(model, x_1, None, draws.to(x_1.device))


def class_conditioned_loss(
    model: torch.nn.Module, x_1: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
    p_uncond: float = 0.1, time_distribution: str = "uniform",
) -> torch.Tensor:
    """As `time_conditioned_loss` with a one-hot class c (labels (N,) int64), zeroed with probability
    p_uncond so that the same network learns the unconditional velocity CFG needs."""
    draws = draw_flow_batch(x_1.shape, generator, p_uncond, time_distribution)
    return flow_loss_from(model, x_1, labels.to(x_1.device), draws.to(x_1.device))
