"""Part B DDPM: the linear-beta schedule and the training losses (B2.2, B2.4).

Index convention (Ho et al. 2020, 1-based): timesteps t = 1..T. Every schedule array has T + 1
entries indexed by t, with entry 0 standing for clean data (beta_0 = 0, abar_0 = 1):

    beta_t = linspace(beta1, beta2, T)[t - 1]      a_t = 1 - beta_t      abar_t = prod_{s<=t} a_s

Training draws t ~ U{1..T}; the network sees t / T in (0, 1]. Diffusers' 0-based timestep i is
our t = i + 1: `schedule.zero_based_alphas_cumprod` equals `DDPMScheduler(...).alphas_cumprod`,
and the forward process (`diffusion_lab.forward_process.add_noise`) runs on that 0-based chain.
Sampling (Algorithms B.2, B.4) is Part A's loop, `sampling.sample`, over this model behind the
`NoiseModel` interface: `experiments/partb_sampling.py`.

The losses come in two phases: `draw_ddpm_batch` (every random draw, from the explicit CPU
generator, and the lookups on t that index tables on the host) and `ddpm_loss_from` (the arithmetic
on the model's device, which never waits for the host, so that a CUDA graph can capture it).
`time_conditioned_loss` and `class_conditioned_loss` run the two in a row; `training.fit` runs them
through its step (`train_step.DDPMLoss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from diffusion_lab import seeding
from diffusion_lab.forward_process import add_noise
from diffusion_lab.mnist.class_dropout import draw_keep_mask, dropped_one_hot


@dataclass(frozen=True)
class DDPMSchedule:
    num_timesteps: int = 300
    beta1: float = 1e-4
    beta2: float = 0.02

    @property
    def betas(self) -> torch.Tensor:
        """(T + 1,) float64; betas[0] = 0."""
        inner = torch.linspace(self.beta1, self.beta2, self.num_timesteps, dtype=torch.float64)
        return torch.cat([torch.zeros(1, dtype=torch.float64), inner])

    @property
    def alphas(self) -> torch.Tensor:
        return 1.0 - self.betas

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """(T + 1,) float64; alphas_cumprod[0] = 1."""
        return torch.cumprod(self.alphas, dim=0)

    @property
    def zero_based_alphas_cumprod(self) -> torch.Tensor:
        """(T,) float64 abar_1..abar_T: what `diffusion_lab.schedule` and diffusers index with k = t - 1."""
        return self.alphas_cumprod[1:]

    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        """What the network is fed for integer timesteps t: t / T as float32."""
        return t.float() / self.num_timesteps

    def sample_timesteps(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """t ~ U{1..T} on the CPU, (batch_size,) int64."""
        return torch.randint(1, self.num_timesteps + 1, (batch_size,), generator=generator)


def q_sample(schedule: DDPMSchedule, x_0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Forward process q(x_t | x_0) at 1-based timesteps t (N,): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
    return add_noise(x_0, eps, t - 1, schedule.zero_based_alphas_cumprod)


# --- training losses -------------------------------------------------------------------------


def loss_weights(schedule: DDPMSchedule, t: torch.Tensor, min_snr_gamma: float | None,
                 floor: float = 0.0) -> torch.Tensor | None:
    """Per-sample weights (N,) of the epsilon loss at 1-based timesteps t, or None for the course's
    uniform weighting. Min-SNR-gamma (Hang et al. 2023): w_t = min(SNR_t, gamma) / SNR_t with
    SNR_t = abar_t / (1 - abar_t), which stops the nearly clean timesteps, where predicting epsilon
    is hard and matters little for the shape of a digit, from dominating the gradient. `floor` keeps
    w_t >= floor there: with no floor those timesteps get almost no weight (t = 1: 5e-4 for gamma 5),
    and the samples keep a faint speckle of noise the network never learned to remove."""
    if min_snr_gamma is None:
        return None
    abar = schedule.alphas_cumprod[t]
    snr = abar / (1.0 - abar)
    return (snr.clamp(max=min_snr_gamma) / snr).clamp(min=floor).float()


@dataclass(frozen=True)
class DDPMDraws:
    """One batch's draws for the epsilon loss, N rows each (`draw_ddpm_batch`).

    noise: eps (N, 1, 28, 28) float32 ~ N(0, I).
    abar: abar_t (N,) float32 at the drawn t ~ U{1..T} (the forward process's table lookup).
    time: t / T (N,) float32 in (0, 1], what the network is fed.
    keep: (N,) float32 class-dropout mask (`class_dropout.draw_keep_mask`); None for B2.2.
    weights: (N,) float32 Min-SNR weights (`loss_weights`); None for the course's uniform weighting.
    """

    noise: torch.Tensor
    abar: torch.Tensor
    time: torch.Tensor
    keep: torch.Tensor | None = None
    weights: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> DDPMDraws:
        return DDPMDraws(**{name: None if value is None else value.to(device) for name, value in vars(self).items()})


def draw_ddpm_batch(
    schedule: DDPMSchedule, shape: torch.Size, generator: torch.Generator, p_uncond: float | None = None,
    min_snr_gamma: float | None = None, min_snr_floor: float = 0.0,
) -> DDPMDraws:
    """The host phase of the epsilon loss for a batch of `shape` (N, 1, 28, 28): from `generator`,
    in this order, t ~ U{1..T}, eps, then (p_uncond given: the class model) the dropout mask; and the
    arithmetic on t that indexes tables on the host. CPU tensors."""
    t = schedule.sample_timesteps(shape[0], generator)
    noise = seeding.randn(shape, generator)
    keep = draw_keep_mask(shape[0], generator, p_uncond) if p_uncond is not None else None
    # q_sample's lookup of abar_t, in the dtype add_noise gives it
    abar = schedule.zero_based_alphas_cumprod[t - 1].float()
    return DDPMDraws(noise, abar, schedule.net_time(t), keep, loss_weights(schedule, t, min_snr_gamma, min_snr_floor))


def ddpm_loss_from(model: torch.nn.Module, x_0: torch.Tensor, labels: torch.Tensor | None,
                   draws: DDPMDraws) -> torch.Tensor:
    """The device phase of the epsilon loss: || eps - eps_theta(x_t, t / T [, c]) ||^2, mean over
    pixels, then over the batch with `draws.weights` if any; x_0 (N, 1, 28, 28) in [0, 1], labels (N,)
    int64 (the class model, `draws.keep` set; else unused), `draws` on x_0's device. Never waits for
    the host, so a CUDA graph can capture it."""
    eps = draws.noise
    abar_t = draws.abar.view(-1, 1, 1, 1)
    x_t = abar_t**0.5 * x_0 + (1 - abar_t) ** 0.5 * eps  # q_sample (forward_process.add_noise)
    inputs = (x_t, draws.time)
    if draws.keep is not None:
        inputs += (dropped_one_hot(labels, draws.keep, model.num_classes),)
    eps_hat = model(*inputs).float()
    if draws.weights is None:
        return F.mse_loss(eps_hat, eps)
    per_sample = (eps_hat - eps).pow(2).flatten(1).mean(dim=1)
    return (draws.weights * per_sample).mean()


def time_conditioned_loss(
    model: torch.nn.Module, schedule: DDPMSchedule, x_0: torch.Tensor, generator: torch.Generator,
    min_snr_gamma: float | None = None, min_snr_floor: float = 0.0,
) -> torch.Tensor:
    """B2.2: || eps - eps_theta(x_t, t / T) ||^2 with t ~ U{1..T}, eps ~ N(0, I); x_0 (N, 1, 28, 28)
    in [0, 1]. With min_snr_gamma, each sample's error is weighted by `loss_weights`."""
    draws = draw_ddpm_batch(schedule, x_0.shape, generator, None, min_snr_gamma, min_snr_floor)
    return ddpm_loss_from(model, x_0, None, draws.to(x_0.device))


def class_conditioned_loss(
    model: torch.nn.Module,
    schedule: DDPMSchedule,
    x_0: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    p_uncond: float = 0.1,
    min_snr_gamma: float | None = None,
    min_snr_floor: float = 0.0,
) -> torch.Tensor:
    """B2.4: as B2.2 with a one-hot class c (labels (N,) int64), zeroed with probability p_uncond so
    the same network also learns the unconditional estimate that classifier-free guidance needs."""
    draws = draw_ddpm_batch(schedule, x_0.shape, generator, p_uncond, min_snr_gamma, min_snr_floor)
    return ddpm_loss_from(model, x_0, labels.to(x_0.device), draws.to(x_0.device))


def class_labels(per_class: int, num_classes: int = 10) -> torch.Tensor:
    """0,0,...,1,1,...: `per_class` samples of each digit, in a grid-friendly order."""
    return torch.arange(num_classes).repeat_interleave(per_class)
