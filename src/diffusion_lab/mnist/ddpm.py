"""Part B DDPM: linear-beta schedule, forward process, training losses and sampling (B2.2-B2.5).

Index convention (Ho et al. 2020, 1-based): timesteps t = 1..T. Every schedule array has T + 1
entries indexed by t, with entry 0 standing for clean data (beta_0 = 0, abar_0 = 1):

    beta_t = linspace(beta1, beta2, T)[t - 1]      a_t = 1 - beta_t      abar_t = prod_{s<=t} a_s

Training draws t ~ U{1..T}; the network sees t / T in (0, 1]. Sampling runs t = T..1 and the
step at t = 1 returns x0_hat exactly (abar_0 = 1, z = 0). Diffusers' 0-based timestep i is our
t = i + 1: `schedule.alphas_cumprod[1:]` equals `DDPMScheduler(...).alphas_cumprod`. The reverse
step is `diffusion_lab.schedule.step` on that 0-based chain (k = t - 1, the last step to k' = -1
with abar = 1) with diffusers' "fixed_large" variance sigma_t^2 = b_t, in float64 scalars.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from diffusion_lab import schedule as schedule_lib
from diffusion_lab import seeding
from diffusion_lab.backends.base import ModelOutput
from diffusion_lab.mnist.precision import autocast, memory_format, resolve_precision
from diffusion_lab.mnist.unet import ClassConditionalUNet, fold_batchnorm, one_hot
from diffusion_lab.sampling import cfg


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


def _gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped (N, 1, 1, 1) in like's dtype and device."""
    picked = values[t.cpu().long()].to(device=like.device, dtype=like.dtype)
    return picked.reshape(-1, *([1] * (like.dim() - 1)))


def q_sample(schedule: DDPMSchedule, x_0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Forward process q(x_t | x_0): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
    alpha_prod_t = _gather(schedule.alphas_cumprod, t, x_0)
    return alpha_prod_t.sqrt() * x_0 + (1 - alpha_prod_t).sqrt() * eps


# --- training losses -------------------------------------------------------------------------


def time_conditioned_loss(
    model: torch.nn.Module, schedule: DDPMSchedule, x_0: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """B2.2: || eps - eps_theta(x_t, t / T) ||^2 with t ~ U{1..T}, eps ~ N(0, I)."""
    t = schedule.sample_timesteps(x_0.shape[0], generator)
    eps = seeding.randn(x_0.shape, generator, x_0.device)
    x_t = q_sample(schedule, x_0, t, eps)
    eps_hat = model(x_t, schedule.net_time(t).to(x_0.device))
    return F.mse_loss(eps_hat.float(), eps)


def class_conditioned_loss(
    model: torch.nn.Module,
    schedule: DDPMSchedule,
    x_0: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    p_uncond: float = 0.1,
) -> torch.Tensor:
    """B2.4: as B2.2 with a one-hot class c, zeroed with probability p_uncond so the same
    network also learns the unconditional estimate that classifier-free guidance needs."""
    t = schedule.sample_timesteps(x_0.shape[0], generator)
    eps = seeding.randn(x_0.shape, generator, x_0.device)
    keep = (torch.rand(x_0.shape[0], generator=generator) >= p_uncond).float()
    c = (one_hot(labels.cpu(), model.num_classes) * keep[:, None]).to(x_0.device)
    x_t = q_sample(schedule, x_0, t, eps)
    eps_hat = model(x_t, schedule.net_time(t).to(x_0.device), c)
    return F.mse_loss(eps_hat.float(), eps)


# --- sampling (Algorithms B.3 / B.4) ---------------------------------------------------------


def reverse_step(
    schedule: DDPMSchedule, x_t: torch.Tensor, eps_hat: torch.Tensor, t: int, z: torch.Tensor | None
) -> torch.Tensor:
    """One step t -> t - 1 of B2.3:

    x_{t-1} = sqrt(abar_{t-1}) b_t / (1 - abar_t) x0_hat + sqrt(a_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
              + sqrt(b_t) z,   with z = 0 at t = 1 (pass None; a z given there is ignored).
    """
    k = t - 1  # the 0-based timestep of `schedule_lib`; k - 1 = -1 at t = 1 stands for abar_0 = 1
    # float64 coefficients, as Part B always had: diffusers' float32 ones would change its samples.
    return schedule_lib.step(
        x_t, eps_hat, k, k - 1, schedule.zero_based_alphas_cumprod, noise=z, variance_type="fixed_large",
        scalar_dtype=torch.float64,
    ).prev_sample


def guided_eps(eps_u: torch.Tensor, eps_c: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: eps = eps_u + g (eps_c - eps_u), Part A's `sampling.cfg`."""
    return cfg(ModelOutput(eps=eps_c), ModelOutput(eps=eps_u), guidance_scale).eps


@dataclass
class SampleResult:
    """samples: (N, 1, 28, 28) float32 on the CPU, not clipped.
    frames: (F, N, 1, 28, 28) snapshots of x_t (first = pure noise, last = the samples) when
    asked for, at `frame_timesteps`; None otherwise."""

    samples: torch.Tensor
    frames: torch.Tensor | None
    frame_timesteps: list[int]
    labels: torch.Tensor | None
    guidance_scale: float | None
    precision: str
    wall_time_s: float
    images_per_s: float
    network_evaluations: int


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    schedule: DDPMSchedule,
    num_samples: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    labels: torch.Tensor | None = None,
    guidance_scale: float = 5.0,
    batch_size: int = 500,
    frame_every: int | None = None,
    precision: str = "auto",
    progress: bool = False,
    image_shape: tuple[int, int, int] = (1, 28, 28),
) -> SampleResult:
    """Algorithm B.3 (time-conditioned, labels=None) or B.4 (class-conditioned with CFG).

    `labels` (num_samples,) int: the digit of each sample (-1 = unconditional). Noise comes from
    `generator` on the CPU, batch after batch, so results depend on (seed, batch_size) only.
    With a class-conditioned model and labels=None, samples are unconditional (zero rows).
    The network runs in eval mode with BatchNorm folded into the convolutions (`model` itself
    is not modified).
    """
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    conditional = isinstance(model, ClassConditionalUNet)
    if conditional and labels is None:
        labels = torch.full((num_samples,), -1, dtype=torch.long)
    if labels is not None and labels.shape[0] != num_samples:
        raise ValueError(f"{labels.shape[0]} labels for {num_samples} samples")
    # 300 evaluations per image: fold BN into the convolutions once (about 1.3x on the CPU).
    model = fold_batchnorm(model).to(device).to(memory_format=memory_format(precision))

    frame_timesteps = _frame_timesteps(schedule.num_timesteps, frame_every)
    samples, frames = [], []
    evaluations = 0
    started = time.perf_counter()
    total_steps = schedule.num_timesteps * -(-num_samples // batch_size)
    with tqdm(total=total_steps, disable=not progress, desc="sampling", leave=False) as bar:
        for begin in range(0, num_samples, batch_size):
            count = min(batch_size, num_samples - begin)
            batch_labels = None if labels is None else labels[begin : begin + count]
            x, batch_frames, batch_evals = _sample_batch(
                model, schedule, count, batch_labels, guidance_scale, generator, device, precision,
                frame_timesteps, image_shape, bar,
            )
            evaluations += batch_evals
            samples.append(x.float().cpu())
            if batch_frames:
                frames.append(torch.stack(batch_frames))
    wall = time.perf_counter() - started
    return SampleResult(
        samples=torch.cat(samples),
        frames=torch.cat(frames, dim=1) if frames else None,
        frame_timesteps=frame_timesteps if frames else [],
        labels=labels,
        guidance_scale=guidance_scale if conditional else None,
        precision=precision,
        wall_time_s=wall,
        images_per_s=num_samples / wall,
        network_evaluations=evaluations,
    )


def _frame_timesteps(num_timesteps: int, frame_every: int | None) -> list[int]:
    """x_t is snapshotted at these t (t = 0 being the final samples), noise first."""
    if not frame_every:
        return []
    kept = list(range(num_timesteps, 0, -frame_every))
    return kept + [0]


def _sample_batch(model, schedule, count, labels, guidance_scale, generator, device, precision,
                  frame_timesteps, image_shape, bar):
    shape = (count, *image_shape)
    x_t = seeding.randn(shape, generator, device)
    if labels is not None:
        c = one_hot(labels.cpu(), model.num_classes).to(device)
        c_pair = torch.cat([c, torch.zeros_like(c)])
    frames = [x_t.float().cpu()] if schedule.num_timesteps in frame_timesteps else []
    evaluations = 0
    for t in range(schedule.num_timesteps, 0, -1):
        t_net = torch.full((count,), t / schedule.num_timesteps, device=device)
        with autocast(device, precision):
            if labels is None:
                eps_hat = model(x_t, t_net).float()
                evaluations += count
            else:
                # Conditional and unconditional estimates in one batch of 2N: one pass, not two.
                eps_both = model(torch.cat([x_t, x_t]), torch.cat([t_net, t_net]), c_pair).float()
                eps_c, eps_u = eps_both.chunk(2)
                eps_hat = guided_eps(eps_u, eps_c, guidance_scale)
                evaluations += 2 * count
        z = seeding.randn(shape, generator, device) if t > 1 else None
        x_t = reverse_step(schedule, x_t, eps_hat, t, z)
        if t - 1 in frame_timesteps:
            frames.append(x_t.float().cpu())
        bar.update(1)
    return x_t, frames, evaluations


def class_labels(per_class: int, num_classes: int = 10) -> torch.Tensor:
    """0,0,...,1,1,...: `per_class` samples of each digit, in a grid-friendly order."""
    return torch.arange(num_classes).repeat_interleave(per_class)
