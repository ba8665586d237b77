"""One-step and iterative denoising, classifier-free guidance, sampling from pure noise.

Everything here sees a model only through `NoiseModel`. The loop takes its noise estimate as a
function `estimate(x_t, t) -> ModelOutput`, so guidance, visual anagrams and hybrid images are
estimates plugged into the one loop below, not copies of it.

The random draws follow diffusers' IFPipeline + DDPMScheduler.step order: x_T of the full batch
shape first, then one draw shaped like x per step with t > 0. A Langevin corrector (predictor-
corrector sampling) draws once more per corrector step, after its reverse step's draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from diffusion_lab import schedule, seeding
from diffusion_lab.backends.base import ModelOutput, NoiseModel

NoiseEstimate = Callable[[torch.Tensor, int], ModelOutput]
# Called as project(x_t', t') after every step; inpainting uses it to re-impose the known pixels.
Projection = Callable[[torch.Tensor, int], torch.Tensor]
# Called as callback(i, t, x_t) before the step at timesteps[i].
StepCallback = Callable[[int, int, torch.Tensor], None]
# Called as start(eps, abar_T) on the first draw, eps ~ N(0, I); returns x_T (matched_start.MatchedStart).
Start = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class LangevinCorrector:
    """Predictor-corrector sampling (Song et al. 2021): after each reverse step to t' >= 0, `steps`
    Langevin steps at t' (`schedule.langevin_step`) with signal-to-noise ratio `snr`, each one more
    network evaluation and one more noise draw. They pull x_t' back towards the distribution the
    network was trained on at t', which the loop leaves when it starts from N(0, I) at a schedule's
    last timestep that still holds signal (the course's abar_T = 0.048) or steps with an imperfect
    network."""

    snr: float
    steps: int = 1

    def __post_init__(self):
        if not self.snr > 0:
            raise ValueError(f"the corrector's signal-to-noise ratio must be > 0, got {self.snr}")
        if self.steps < 1:
            raise ValueError(f"the corrector takes at least one step, got {self.steps}")

    def evaluations(self, num_steps: int) -> int:
        """Network evaluations the corrector adds to a loop of `num_steps` reverse steps (none after the last)."""
        return self.steps * max(num_steps - 1, 0)


def guide(conditional: torch.Tensor, unconditional: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance's one formula, u + g (c - u), for noise estimates and flow-matching
    velocities alike: g = 1 is the conditional estimate, g = 0 the unconditional one. Both
    estimates and the result have one shape, (N, C, H, W)."""
    return unconditional + guidance * (conditional - unconditional)


def needs_unconditional(guidance: float | None) -> bool:
    """Whether CFG at `guidance` needs the unconditional estimate: not without guidance (None), and
    not at g = 1, where u + g (c - u) is the conditional estimate itself (diffusers' IFPipeline
    skips that pass too); the saved pass is half the network evaluations."""
    return guidance is not None and guidance != 1.0


def cfg(conditional: ModelOutput, unconditional: ModelOutput, guidance: float) -> ModelOutput:
    """eps = eps_u + g (eps_c - eps_u), with the variance of the conditional pass (as IFPipeline)."""
    return ModelOutput(eps=guide(conditional.eps, unconditional.eps, guidance), variance=conditional.variance)


def guided_estimate(
    model: NoiseModel, condition: Any, uncond: Any = None, guidance: float | None = None
) -> NoiseEstimate:
    """The model's estimate for `condition`, with CFG at scale `guidance` when it is not None
    (`uncond` defaults to the condition of the empty prompt); one pass where `needs_unconditional`
    says CFG needs no unconditional estimate."""
    if not needs_unconditional(guidance):
        return lambda x_t, t: model.predict(x_t, t, condition)
    if uncond is None:
        uncond = model.encode("")

    def estimate(x_t: torch.Tensor, t: int) -> ModelOutput:
        return cfg(*_predict_pair(model, x_t, t, condition, uncond), guidance)

    return estimate


def _batch_of(condition: torch.Tensor, n: int) -> torch.Tensor:
    return condition.expand(n, *condition.shape[1:]) if condition.shape[0] == 1 else condition


def _predict_pair(model: NoiseModel, x_t: torch.Tensor, t: int, condition: Any, uncond: Any):
    """(conditional, unconditional) outputs. Tensor conditions go through the network as one batch
    [uncond; cond], exactly as IFPipeline does: a network's output for an image depends slightly
    on what else is in its batch, and CFG amplifies that difference by g."""
    if not (isinstance(condition, torch.Tensor) and isinstance(uncond, torch.Tensor)):
        return model.predict(x_t, t, condition), model.predict(x_t, t, uncond)
    n = x_t.shape[0]
    both = model.predict(torch.cat([x_t, x_t]), t, torch.cat([_batch_of(uncond, n), _batch_of(condition, n)]))
    eps_u, eps_c = both.eps.chunk(2)
    variance_c = None if both.variance is None else both.variance.chunk(2)[1]
    return ModelOutput(eps=eps_c, variance=variance_c), ModelOutput(eps=eps_u, variance=None)


def _resolve_estimate(model, estimate, condition, guidance, uncond) -> NoiseEstimate:
    if estimate is not None:
        if condition is not None or guidance is not None or uncond is not None:
            raise ValueError("pass either `estimate` or condition/guidance/uncond, not both")
        return estimate
    if condition is None:
        raise ValueError("a condition is needed (model.encode(prompt)); for unconditional use model.encode('')")
    return guided_estimate(model, condition, uncond, guidance)


def draw_noise(
    shape, generator: torch.Generator | None, device, dtype, noise_view: Callable | None = None
) -> torch.Tensor:
    """Standard normal noise of `shape` (e.g. (N, C, H, W)) from `generator`, drawn on the CPU and
    moved to `device`; `noise_view` maps each draw (tests use it to flip)."""
    if generator is None:
        raise ValueError("this draw needs an explicit torch.Generator (see diffusion_lab.seeding)")
    noise = seeding.randn(shape, generator, device=device, dtype=dtype)
    return noise if noise_view is None else noise_view(noise)


@torch.no_grad()
def one_step_denoise(
    model: NoiseModel,
    x_t: torch.Tensor,
    t: int,
    condition: Any = None,
    *,
    guidance: float | None = None,
    uncond: Any = None,
    estimate: NoiseEstimate | None = None,
) -> torch.Tensor:
    """x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t) from a single network evaluation.

    Args:
        model: the noise model; x_t lives in its data range (`model.data_range`).
        x_t: (N, C, H, W) noisy images at timestep t (`model.sample_shape` per image).
        t: the timestep, in [0, T).
        condition: what `model.encode(prompt)` returned, for one image or for each.
        guidance: the CFG scale g; None evaluates the condition alone.
        uncond: the unconditional condition CFG uses (default: `model.encode("")`).
        estimate: a noise estimate to use instead of condition/guidance/uncond.

    Returns:
        x0_hat: (N, C, H, W), unclipped.
    """
    estimate = _resolve_estimate(model, estimate, condition, guidance, uncond)
    return schedule.predict_x0(x_t, estimate(x_t, int(t)).eps, int(t), model.alphas_cumprod)


@torch.no_grad()
def iterative_denoise(
    model: NoiseModel,
    x: torch.Tensor,
    timesteps: list[int] | None = None,
    i_start: int = 0,
    condition: Any = None,
    generator: torch.Generator | None = None,
    *,
    guidance: float | None = None,
    uncond: Any = None,
    estimate: NoiseEstimate | None = None,
    x0_clip: schedule.X0Clip | None = None,
    corrector: LangevinCorrector | None = None,
    project: Projection | None = None,
    noise_view: Callable[[torch.Tensor], torch.Tensor] | None = None,
    callback: StepCallback | None = None,
    callback_every: int = 1,
    scalar_dtype: torch.dtype = torch.float32,
    progress: bool = False,
) -> torch.Tensor:
    """Denoise x, which is at timesteps[i_start], through every later timestep and a final step
    to t' = -1: the result is the last x0_hat.

    Args:
        model: the noise model; x lives in its data range (IF: [-1, 1]; MNIST: [0, 1]).
        x: (N, C, H, W) images at timesteps[i_start] (`model.sample_shape` per image).
        timesteps: descending, defaults to `model.strided_timesteps()`.
        i_start: the index in `timesteps` that x is at.
        condition: what `model.encode(prompt)` returned, for one image or for each.
        generator: the source of every step's noise (required: no hidden global state).
        guidance: the CFG scale g; None evaluates the condition alone.
        uncond: the unconditional condition CFG uses (default: `model.encode("")`).
        estimate: the noise estimate; by default the model's at `condition`, with CFG when
            `guidance` is set.
        x0_clip: diffusers' clip_sample / thresholding of x0_hat (None: as the course, no clipping).
        corrector: Langevin steps at t' after every step but the last (None: none, as the course).
        project: applied to x after every step as project(x_t', t').
        noise_view: applied to each noise draw (tests use it to flip).
        callback: callback(i, t, x_t) before the steps i_start, i_start + k, ... (k = callback_every).
        callback_every: k above.
        scalar_dtype: precision of the step's coefficients (`schedule.step`); float32 is diffusers'.
        progress: show a progress bar.

    Returns:
        x0: (N, C, H, W), the last step's output, in x's dtype; about the model's data range,
            unclipped.
    """
    estimate = _resolve_estimate(model, estimate, condition, guidance, uncond)
    timesteps = schedule.check_timesteps(
        model.strided_timesteps() if timesteps is None else timesteps, len(model.alphas_cumprod)
    )
    if not 0 <= i_start < len(timesteps):
        raise ValueError(f"i_start must index timesteps (0..{len(timesteps) - 1}), got {i_start}")
    if callback_every < 1:
        raise ValueError(f"callback_every must be >= 1, got {callback_every}")

    for i in tqdm(range(i_start, len(timesteps)), disable=not progress, desc=f"denoising ({model.name})"):
        t = timesteps[i]
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        if callback is not None and (i - i_start) % callback_every == 0:
            callback(i, t, x)
        out = estimate(x, t)
        noise = draw_noise(x.shape, generator, out.eps.device, out.eps.dtype, noise_view) if t > 0 else None
        x = schedule.step(
            x,
            out.eps,
            t,
            t_prev,
            model.alphas_cumprod,
            noise=noise,
            variance_type=model.variance_type,
            predicted_variance=out.variance,
            x0_clip=x0_clip,
            scalar_dtype=scalar_dtype,
        ).prev_sample
        if corrector is not None and t_prev >= 0:
            x = _correct(x, t_prev, estimate, corrector, model.alphas_cumprod, generator, noise_view, scalar_dtype)
        if project is not None:
            x = project(x, t_prev)
    return x


def _correct(x, t, estimate, corrector, alphas_cumprod, generator, noise_view, scalar_dtype) -> torch.Tensor:
    for _ in range(corrector.steps):
        eps = estimate(x, t).eps
        noise = draw_noise(x.shape, generator, eps.device, eps.dtype, noise_view)
        x = schedule.langevin_step(x, eps, t, alphas_cumprod, corrector.snr, noise, scalar_dtype)
    return x


def sample(
    model: NoiseModel,
    n: int,
    condition: Any = None,
    generator: torch.Generator | None = None,
    *,
    timesteps: list[int] | None = None,
    noise_view: Callable[[torch.Tensor], torch.Tensor] | None = None,
    start: Start | None = None,
    **loop_options,
) -> torch.Tensor:
    """n samples from pure noise: x_T ~ N(0, I) at timesteps[0], then `iterative_denoise`
    (guidance, uncond, estimate, x0_clip, corrector, callback, scalar_dtype, progress pass through).

    Args:
        model: the noise model.
        n: how many samples.
        condition: what `model.encode(prompt)` returned.
        generator: the source of x_T (drawn first, for the whole batch) and of every step's noise.
        timesteps: descending, defaults to `model.strided_timesteps()`.
        noise_view: applied to each noise draw.
        start: maps that first draw to x_T as start(eps, abar at timesteps[0])
            (`matched_start.MatchedStart`); None keeps x_T = eps, as the course.
        **loop_options: passed to `iterative_denoise`.

    Returns:
        samples: (n, *model.sample_shape), e.g. (n, 1, 28, 28) for MNIST, about the model's data
            range (MNIST: [0, 1]; IF: [-1, 1]), unclipped.
    """
    timesteps = schedule.check_timesteps(
        model.strided_timesteps() if timesteps is None else timesteps, len(model.alphas_cumprod)
    )
    x_T = draw_noise((n, *model.sample_shape), generator, model.device, model.dtype, noise_view)
    if start is not None:
        x_T = start(x_T, float(model.alphas_cumprod[timesteps[0]]))
    return iterative_denoise(
        model, x_T, timesteps, 0, condition, generator, noise_view=noise_view, **loop_options
    )


class FrameRecorder:
    """A `callback` that keeps (i, t, x_t) on the CPU, e.g. every 5th step of section 1.4."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, int, torch.Tensor]] = []

    def __call__(self, i: int, t: int, x_t: torch.Tensor) -> None:
        self.frames.append((i, t, x_t.detach().to("cpu", copy=True)))

    @property
    def timesteps(self) -> list[int]:
        return [t for _, t, _ in self.frames]
