"""Part B DDPM: the linear-beta schedule and the training losses (B2.2, B2.4).

Index convention (Ho et al. 2020, 1-based): timesteps t = 1..T. Every schedule array has T + 1
entries indexed by t, with entry 0 standing for clean data (beta_0 = 0, abar_0 = 1):

    beta_t = linspace(beta1, beta2, T)[t - 1]      a_t = 1 - beta_t      abar_t = prod_{s<=t} a_s

Training draws t ~ U{1..T}; the network sees t / T in (0, 1]. Diffusers' 0-based timestep i is
our t = i + 1: `schedule.zero_based_alphas_cumprod` equals `DDPMScheduler(...).alphas_cumprod`,
and the forward process (`diffusion_lab.forward_process.add_noise`) runs on that 0-based chain.
Sampling (Algorithms B.2, B.4) is Part A's loop, `sampling.sample`, over this model behind the
`NoiseModel` interface: `experiments/partb_sampling.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from diffusion_lab import seeding
from diffusion_lab.forward_process import add_noise
from diffusion_lab.mnist.unet import one_hot


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


def _epsilon_loss(eps_hat: torch.Tensor, eps: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return F.mse_loss(eps_hat.float(), eps)
    per_sample = (eps_hat.float() - eps).pow(2).flatten(1).mean(dim=1)
    return (weights.to(per_sample.device) * per_sample).mean()


def time_conditioned_loss(
    model: torch.nn.Module, schedule: DDPMSchedule, x_0: torch.Tensor, generator: torch.Generator,
    min_snr_gamma: float | None = None, min_snr_floor: float = 0.0,
) -> torch.Tensor:
    """B2.2: || eps - eps_theta(x_t, t / T) ||^2 with t ~ U{1..T}, eps ~ N(0, I); x_0 (N, 1, 28, 28)
    in [0, 1]. With min_snr_gamma, each sample's error is weighted by `loss_weights`."""
    t = schedule.sample_timesteps(x_0.shape[0], generator)
    eps = seeding.randn(x_0.shape, generator, x_0.device)
    x_t = q_sample(schedule, x_0, t, eps)
    eps_hat = model(x_t, schedule.net_time(t).to(x_0.device))
    return _epsilon_loss(eps_hat, eps, loss_weights(schedule, t, min_snr_gamma, min_snr_floor))


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
    """B2.4: as B2.2 with a one-hot class c, zeroed with probability p_uncond so the same
    network also learns the unconditional estimate that classifier-free guidance needs."""
    t = schedule.sample_timesteps(x_0.shape[0], generator)
    eps = seeding.randn(x_0.shape, generator, x_0.device)
    keep = (torch.rand(x_0.shape[0], generator=generator) >= p_uncond).float()
    c = (one_hot(labels.cpu(), model.num_classes) * keep[:, None]).to(x_0.device)
    x_t = q_sample(schedule, x_0, t, eps)
    eps_hat = model(x_t, schedule.net_time(t).to(x_0.device), c)
    return _epsilon_loss(eps_hat, eps, loss_weights(schedule, t, min_snr_gamma, min_snr_floor))


def class_labels(per_class: int, num_classes: int = 10) -> torch.Tensor:
    """0,0,...,1,1,...: `per_class` samples of each digit, in a grid-friendly order."""
    return torch.arange(num_classes).repeat_interleave(per_class)
