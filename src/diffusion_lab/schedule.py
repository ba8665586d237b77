"""Noise schedules, the forward process q(x_t | x_0) and the strided reverse step.

Timesteps index `alphas_cumprod` (abar), 0..T-1. A strided step goes from t to t', the next entry
of a descending list; after the last entry t' = -1 with abar_{-1} = 1, so the last step returns
x0_hat. This is exactly diffusers' `DDPMScheduler.step` after `set_timesteps(timesteps=[...])`,
including its variance and its choice to add noise only when t > 0.

Scalars are 0-dim float32 tensors taken from the float64 `alphas_cumprod` (see `abar_at`): the
same code runs on any device and dtype, and the images keep the model's. A caller may ask for
float64 scalars instead (`scalar_dtype`), trading bit-equality with diffusers for accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from diffusion_lab import seeding
# The forward process and timestep lists are shared with Part B's training, one layer down.
from diffusion_lab.forward_process import abar_at, add_noise, strided_timesteps  # noqa: F401

# diffusers clamps the posterior variance before taking its log; matching it keeps the last steps equal.
MIN_POSTERIOR_VARIANCE = 1e-20


# --- timesteps ----------------------------------------------------------------------------------


def check_timesteps(timesteps: list[int], num_timesteps: int) -> list[int]:
    """Integer, strictly descending and inside [0, T): what `set_timesteps(timesteps=...)` accepts."""
    timesteps = [int(t) for t in timesteps]
    if not timesteps:
        raise ValueError("timesteps is empty")
    if any(later >= earlier for earlier, later in zip(timesteps, timesteps[1:])):
        raise ValueError(f"timesteps must be strictly descending, got {timesteps}")
    if timesteps[0] >= num_timesteps or timesteps[-1] < 0:
        raise ValueError(f"timesteps must lie in [0, {num_timesteps}), got {timesteps[0]}..{timesteps[-1]}")
    return timesteps


# --- forward process -----------------------------------------------------------------------------


def forward(
    x0: torch.Tensor, t: int, alphas_cumprod: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """A draw from q(x_t | x0); t = -1 is the clean image itself (no draw).

    Args:
        x0: (N, C, H, W) clean images in the model's data range (IF: [-1, 1]; MNIST: [0, 1]).
        t: one timestep in [0, T) for the whole batch, or -1.
        alphas_cumprod: (T,) float64 abar_0..abar_{T-1}.
        generator: the source of the noise eps ~ N(0, I), drawn shaped like x0.

    Returns:
        x_t: (N, C, H, W), x0's dtype and device; unbounded (x0 scaled plus Gaussian noise).
    """
    if int(t) < 0:
        return x0.clone()
    eps = seeding.randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
    return add_noise(x0, eps, t, alphas_cumprod)


def predict_x0(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    t: int,
    alphas_cumprod: torch.Tensor,
    scalar_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)   (DDPM eq. 15).

    Args:
        x_t: (N, C, H, W) noisy images at timestep t.
        eps: (N, C, H, W) the noise estimate for x_t.
        t: the timestep, in [0, T).
        alphas_cumprod: (T,) float64 abar_0..abar_{T-1}.
        scalar_dtype: precision of abar_t.

    Returns:
        x0_hat: (N, C, H, W), unclipped: it can leave the data range, most at large t.
    """
    abar_t = abar_at(alphas_cumprod, int(t), scalar_dtype)
    return (x_t - (1 - abar_t) ** 0.5 * eps) / abar_t**0.5


# --- x0_hat clipping (diffusers clip_sample / thresholding) --------------------------------------


@dataclass(frozen=True)
class X0Clip:
    """What diffusers' DDPMScheduler does to x0_hat before the step: dynamic thresholding when
    `threshold_ratio` is set (Imagen; DeepFloyd IF's scheduler has it on), else clamping to
    [-clip_range, clip_range] when `clip_range` is set. The course's own loop does neither."""

    clip_range: float | None = None
    threshold_ratio: float | None = None
    threshold_max: float = 1.0

    @classmethod
    def from_scheduler_config(cls, config: Any) -> "X0Clip":
        """The clipping a diffusers DDPMScheduler config asks for (its keys, its defaults)."""
        get = config.get if hasattr(config, "get") else lambda key, default: getattr(config, key, default)
        return cls(
            clip_range=float(get("clip_sample_range", 1.0)) if get("clip_sample", True) else None,
            threshold_ratio=float(get("dynamic_thresholding_ratio", 0.995)) if get("thresholding", False) else None,
            threshold_max=float(get("sample_max_value", 1.0)),
        )

    def __call__(self, x0_hat: torch.Tensor) -> torch.Tensor:
        if self.threshold_ratio is not None:
            return self._threshold(x0_hat)
        if self.clip_range is not None:
            return x0_hat.clamp(-self.clip_range, self.clip_range)
        return x0_hat

    def _threshold(self, x0_hat: torch.Tensor) -> torch.Tensor:
        # Upcast: quantile and clamp have no half kernels on the CPU (diffusers does the same).
        flat = x0_hat.float().reshape(x0_hat.shape[0], -1)
        s = torch.quantile(flat.abs(), self.threshold_ratio, dim=1)
        s = torch.clamp(s, min=1, max=self.threshold_max).unsqueeze(1)
        return (torch.clamp(flat, -s, s) / s).reshape(x0_hat.shape).to(x0_hat.dtype)


# --- the strided reverse step --------------------------------------------------------------------


@dataclass(frozen=True)
class StepCoefficients:
    """The scalars of one step t -> t' (DDPM eqs. 6-7 with strided a_t, b_t), 0-dim tensors."""

    t: int
    t_prev: int
    abar_t: torch.Tensor
    abar_prev: torch.Tensor
    alpha_t: torch.Tensor  # a_t = abar_t / abar_t'
    beta_t: torch.Tensor  # b_t = 1 - a_t
    x0_coeff: torch.Tensor  # sqrt(abar_t') b_t / (1 - abar_t)
    xt_coeff: torch.Tensor  # sqrt(a_t) (1 - abar_t') / (1 - abar_t)
    posterior_variance: torch.Tensor  # (1 - abar_t') / (1 - abar_t) b_t, clamped like diffusers


def step_coefficients(
    t: int, t_prev: int, alphas_cumprod: torch.Tensor, scalar_dtype: torch.dtype = torch.float32
) -> StepCoefficients:
    t, t_prev = int(t), int(t_prev)
    if t_prev >= t:
        raise ValueError(f"a reverse step goes down in time, got t={t} -> t'={t_prev}")
    abar_t = abar_at(alphas_cumprod, t, scalar_dtype)
    abar_prev = abar_at(alphas_cumprod, t_prev, scalar_dtype)
    alpha_t = abar_t / abar_prev
    beta_t = 1 - alpha_t
    posterior_variance = (1 - abar_prev) / (1 - abar_t) * beta_t
    return StepCoefficients(
        t=t,
        t_prev=t_prev,
        abar_t=abar_t,
        abar_prev=abar_prev,
        alpha_t=alpha_t,
        beta_t=beta_t,
        x0_coeff=(abar_prev**0.5 * beta_t) / (1 - abar_t),
        xt_coeff=alpha_t**0.5 * (1 - abar_prev) / (1 - abar_t),
        posterior_variance=torch.clamp(posterior_variance, min=MIN_POSTERIOR_VARIANCE),
    )


FIXED_VARIANCE_TYPES = ("fixed_small", "fixed_large")


def fixed_variance(coeffs: StepCoefficients, variance_type: str) -> torch.Tensor:
    """sigma^2 of a fixed-variance step, what diffusers' `_get_variance` returns for these types.

    fixed_small: the posterior variance (DDPM's lower bound). fixed_large: b_t = 1 - abar_t / abar_t'
    (the upper bound), unclamped and with no special case at the last step, as in diffusers; the
    last step adds no noise anyway.
    """
    if variance_type == "fixed_small":
        return coeffs.posterior_variance
    if variance_type == "fixed_large":
        return coeffs.beta_t
    raise ValueError(f"{variance_type!r} is not a fixed variance type: use one of {FIXED_VARIANCE_TYPES}")


def step_log_variance(
    coeffs: StepCoefficients, variance_type: str, predicted_variance: torch.Tensor | None = None
) -> torch.Tensor:
    """log sigma^2 of the step, what diffusers' `_get_variance` returns for "learned_range".

    fixed types: the log of `fixed_variance`. learned_range (improved DDPM eq. 15): interpolate in
    log space between the posterior variance and b_t with frac = (v + 1) / 2, v in [-1, 1].
    """
    if variance_type in FIXED_VARIANCE_TYPES:
        return torch.log(fixed_variance(coeffs, variance_type))
    if variance_type == "learned_range":
        if predicted_variance is None:
            raise ValueError("variance_type 'learned_range' needs the model's predicted variance")
        min_log = torch.log(coeffs.posterior_variance)
        max_log = torch.log(coeffs.beta_t)
        frac = (predicted_variance + 1) / 2
        return frac * max_log + (1 - frac) * min_log
    raise ValueError(
        f"unsupported variance_type {variance_type!r}: use 'fixed_small', 'fixed_large' or 'learned_range'"
    )


def step_std(
    coeffs: StepCoefficients, variance_type: str, predicted_variance: torch.Tensor | None = None
) -> torch.Tensor:
    """sigma of the step noise: 0-dim, or shaped like x for a learned variance."""
    if variance_type in FIXED_VARIANCE_TYPES:
        return fixed_variance(coeffs, variance_type) ** 0.5
    return torch.exp(0.5 * step_log_variance(coeffs, variance_type, predicted_variance))


@dataclass(frozen=True)
class StepOutput:
    prev_sample: torch.Tensor  # x_t'
    x0_hat: torch.Tensor  # after clipping, as used in the mean


def step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    t: int,
    t_prev: int,
    alphas_cumprod: torch.Tensor,
    noise: torch.Tensor | None = None,
    variance_type: str = "fixed_small",
    predicted_variance: torch.Tensor | None = None,
    x0_clip: X0Clip | None = None,
    scalar_dtype: torch.dtype = torch.float32,
) -> StepOutput:
    """x_t' = sqrt(abar_t') b_t / (1-abar_t) x0_hat + sqrt(a_t) (1-abar_t') / (1-abar_t) x_t + sigma z.

    Args:
        x_t: (N, C, H, W) images at timestep t, in the model's data range plus noise.
        eps: (N, C, H, W) the noise estimate for x_t.
        t: the current timestep, in [0, T).
        t_prev: the next (smaller) timestep t', or -1 for the last step.
        alphas_cumprod: (T,) float64 abar_0..abar_{T-1}.
        noise: z, (N, C, H, W) standard normal; used only when t > 0 (diffusers' rule), and None
            gives the mean alone.
        variance_type: "fixed_small", "fixed_large" or "learned_range" (see `step_log_variance`).
        predicted_variance: (N, C, H, W) in [-1, 1], the model's variance channels for "learned_range".
        x0_clip: what is done to x0_hat before the mean (None: nothing, as the course).
        scalar_dtype: the precision of the coefficients: float32 is diffusers' own arithmetic.

    Returns:
        prev_sample x_t' and the x0_hat it used, each (N, C, H, W).
    """
    coeffs = step_coefficients(t, t_prev, alphas_cumprod, scalar_dtype)
    x0_hat = predict_x0(x_t, eps, coeffs.t, alphas_cumprod, scalar_dtype)
    if x0_clip is not None:
        x0_hat = x0_clip(x0_hat)
    prev_sample = coeffs.x0_coeff * x0_hat + coeffs.xt_coeff * x_t
    if noise is not None and coeffs.t > 0:
        prev_sample = prev_sample + step_std(coeffs, variance_type, predicted_variance) * noise
    return StepOutput(prev_sample=prev_sample, x0_hat=x0_hat)


# --- Langevin correction --------------------------------------------------------------------------


def langevin_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    t: int,
    alphas_cumprod: torch.Tensor,
    snr: float,
    noise: torch.Tensor,
    scalar_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """One Langevin corrector step that stays at timestep t (Song et al. 2021, "Score-based generative
    modeling through SDEs", Algorithm 5 for the VP SDE).

    With the score s = -eps / sqrt(1 - abar_t) and, per image, the step size
    delta = 2 a_t (snr ||z|| / ||s||)^2 (a_t = abar_t / abar_{t-1}, the one-step alpha), the step is
    x_t + delta s + sqrt(2 delta) z. The step size makes the drift's norm r sqrt(a_t) times the
    noise's, so the correction is equally strong at every noise level.

    Args:
        x_t: (N, C, H, W) images at timestep t, in the model's data range plus noise.
        eps: (N, C, H, W) the noise estimate for x_t.
        t: the timestep, in [0, T).
        alphas_cumprod: (T,) float64 abar_0..abar_{T-1}.
        snr: the signal-to-noise ratio r above, > 0 (Song et al.'s VP default: 0.16).
        noise: z, (N, C, H, W) standard normal.
        scalar_dtype: the precision of abar_t and a_t.

    Returns:
        (N, C, H, W), still at timestep t.
    """
    if snr <= 0:
        raise ValueError(f"the Langevin signal-to-noise ratio must be > 0, got {snr}")
    t = int(t)
    abar_t = abar_at(alphas_cumprod, t, scalar_dtype)
    alpha_t = abar_t / abar_at(alphas_cumprod, t - 1, scalar_dtype)
    score = -eps.float() / (1 - abar_t) ** 0.5
    score_norm = score.flatten(1).norm(dim=1)
    noise_norm = noise.float().flatten(1).norm(dim=1)
    delta = (2 * alpha_t * (snr * noise_norm / score_norm) ** 2).view(-1, *([1] * (x_t.dim() - 1)))
    return (x_t.float() + delta * score + (2 * delta) ** 0.5 * noise.float()).to(x_t.dtype)
