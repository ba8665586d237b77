"""DeepFloyd IF's noise schedules as data, so the forward process needs no weights.

The values are what diffusers' `scripts/convert_if.py` wrote into the published
`scheduler/scheduler_config.json` of IF-I-{M,L,XL}-v1.0 (stage I) and IF-II-{M,L}-v1.0
(stage II); every field a `DDPMScheduler` reads is spelled out, defaults included, so the dict
means the same thing whatever diffusers' defaults become.

Which fields matter where:
- the forward process q(x_t | x_0) (sections 1.1-1.3) reads only `num_train_timesteps` and
  `beta_schedule`: "squaredcos_cap_v2" is the cosine schedule of Nichol & Dhariwal, so
  `beta_start` / `beta_end` are ignored;
- an iterative step (1.4 on) also reads `variance_type` ("learned_range": the UNet's last 3
  channels interpolate the log-variance between the posterior variance and beta),
  `prediction_type` ("epsilon") and the clipping of x0_hat: `thresholding=True` with
  `dynamic_thresholding_ratio` and `sample_max_value` (Imagen's dynamic thresholding) takes
  precedence over `clip_sample`, which IF's configs leave on but never reach;
- `timestep_spacing` / `steps_offset` only shape the stock pipeline's `num_inference_steps`
  grid (section 0); our strided lists are explicit.
"""

from __future__ import annotations

import math
from typing import Any

import torch

IF_STAGE1_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "trained_betas": None,
    "variance_type": "learned_range",
    "prediction_type": "epsilon",
    "thresholding": True,
    "dynamic_thresholding_ratio": 0.95,
    "sample_max_value": 1.5,
    "clip_sample": True,
    "clip_sample_range": 1.0,
    "timestep_spacing": "leading",
    "steps_offset": 0,
    "rescale_betas_zero_snr": False,
}

# Stage II differs from stage I only in how hard x0_hat is thresholded.
IF_STAGE2_SCHEDULER_CONFIG: dict[str, Any] = {**IF_STAGE1_SCHEDULER_CONFIG, "sample_max_value": 1.0}

# Stage II noises its 64x64 input (noise_level 250 by default) with a plain cosine DDPM.
IF_STAGE2_IMAGE_NOISING_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "variance_type": "fixed_small",
    "prediction_type": "epsilon",
    "thresholding": False,
}

_MAX_BETA = 0.999


def _cosine_alpha_bar(s: float) -> float:
    return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2


def cosine_betas(num_train_timesteps: int) -> torch.Tensor:
    """Betas of the capped cosine schedule, computed as diffusers does (float64 math, float32 result)."""
    T = num_train_timesteps
    betas = [min(1 - _cosine_alpha_bar((i + 1) / T) / _cosine_alpha_bar(i / T), _MAX_BETA) for i in range(T)]
    return torch.tensor(betas, dtype=torch.float32)


def alphas_cumprod_from_config(config: dict[str, Any] = IF_STAGE1_SCHEDULER_CONFIG) -> torch.Tensor:
    """abar[t] for t = 0..T-1 as float64, bit-equal to `DDPMScheduler(**config).alphas_cumprod`.

    The product is taken in float32 like diffusers' so that a forward process built from this
    config and one built from a loaded pipeline see the very same numbers.
    """
    if config["beta_schedule"] != "squaredcos_cap_v2" or config.get("rescale_betas_zero_snr"):
        raise ValueError(f"only IF's plain cosine schedule is tabled here, not {config['beta_schedule']!r}")
    alphas = 1.0 - cosine_betas(config["num_train_timesteps"])
    return torch.cumprod(alphas, dim=0).to(torch.float64)


def if_alphas_cumprod() -> torch.Tensor:
    """IF stage I's abar, the schedule of every Part A section drawn with DeepFloyd."""
    return alphas_cumprod_from_config(IF_STAGE1_SCHEDULER_CONFIG)
