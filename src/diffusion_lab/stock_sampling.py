"""Sampling with diffusers' own DDPMScheduler over any NoiseModel: the stock loop, not ours.

Section 0 of the write-up shows what a pretrained model draws out of the box, before any
hand-written loop. DeepFloyd IF has a stock pipeline for that (IFPipeline); a model without one
gets the nearest stock thing here: diffusers' scheduler, with its own timestep spacing, update
and random draws, over the model's training schedule. Only the noise estimate (and its
classifier-free guidance) comes from this project.
"""

from __future__ import annotations

from typing import Any

import torch

from diffusion_lab.backends.base import NoiseModel
from diffusion_lab.sampling import draw_noise, guided_estimate


def training_betas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """beta_t = 1 - abar_t / abar_{t-1}, with abar_{-1} = 1: the schedule a scheduler is built from."""
    previous = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    return 1 - alphas_cumprod / previous


def stock_scheduler(model: NoiseModel, num_inference_steps: int):
    """diffusers' DDPMScheduler on the model's schedule, set to `num_inference_steps` (its default
    "leading" spacing). No clipping of x0_hat: the model's data range need not be [-1, 1]."""
    from diffusers import DDPMScheduler

    num_timesteps = len(model.alphas_cumprod)
    if not 1 <= num_inference_steps <= num_timesteps:
        raise ValueError(f"num_inference_steps must lie in 1..{num_timesteps}, got {num_inference_steps}")
    scheduler = DDPMScheduler(
        num_train_timesteps=num_timesteps,
        trained_betas=training_betas(model.alphas_cumprod).tolist(),
        variance_type=model.variance_type,
        clip_sample=False,
    )
    scheduler.set_timesteps(num_inference_steps)
    return scheduler


@torch.no_grad()
def sample_with_scheduler(
    model: NoiseModel,
    n: int,
    condition: Any,
    generator: torch.Generator,
    *,
    num_inference_steps: int,
    guidance: float | None = None,
) -> torch.Tensor:
    """n samples from pure noise by `stock_scheduler`'s loop, with CFG at `guidance` when set."""
    scheduler = stock_scheduler(model, num_inference_steps)
    estimate = guided_estimate(model, condition, guidance=guidance)
    x = draw_noise((n, *model.sample_shape), generator, model.device, model.dtype)
    for t in scheduler.timesteps:
        out = estimate(x, int(t))
        model_output = out.eps if out.variance is None else torch.cat([out.eps, out.variance], dim=1)
        x = scheduler.step(model_output, t, x, generator=generator).prev_sample
    return x
