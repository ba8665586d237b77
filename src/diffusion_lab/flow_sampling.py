"""Sampling a flow-matching model: integrate dx/dt = u(x, t) from noise at t = 0 to data at t = 1.

The velocity field is a function `velocity(x, t) -> u`, x (N, ...) and u of the same shape, t a
float in [0, 1]; this module never knows which network computes it. Classifier-free guidance goes
through `sampling.guide`, the formula the DDPM loops use.
"""

from __future__ import annotations

from typing import Callable

import torch

from diffusion_lab import seeding
from diffusion_lab.sampling import guide, needs_unconditional

Velocity = Callable[[torch.Tensor, float], torch.Tensor]
# (x (2N, ...), t, conditions (2N, ...)) -> u (2N, ...): one network call for both halves of CFG.
ConditionalVelocity = Callable[[torch.Tensor, float, torch.Tensor], torch.Tensor]
# Called as callback(i, t, x) before step i, and once more after the last step with t = 1.
FlowCallback = Callable[[int, float, torch.Tensor], None]

SAMPLERS = ("euler", "heun")


def evaluations_per_sample(sampler: str, num_steps: int) -> int:
    """Network evaluations per sample (NFE) of `num_steps` steps: Euler 1 per step, Heun 2."""
    _check(sampler, num_steps)
    return num_steps * (1 if sampler == "euler" else 2)


def _check(sampler: str, num_steps: int) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")


@torch.no_grad()
def integrate(
    velocity: Velocity, x_0: torch.Tensor, num_steps: int, sampler: str = "euler",
    callback: FlowCallback | None = None,
) -> torch.Tensor:
    """x at t = 1 from x_0 (N, ...) at t = 0 over `num_steps` equal steps h = 1 / num_steps.

    euler: x += h u(x, t).  heun: the Euler guess x' = x + h u(x, t), then
    x += h (u(x, t) + u(x', t + h)) / 2 (second order, two evaluations per step)."""
    _check(sampler, num_steps)
    times = torch.linspace(0.0, 1.0, num_steps + 1, dtype=torch.float64).tolist()
    x = x_0
    for i in range(num_steps):
        t, t_next = times[i], times[i + 1]
        h = t_next - t
        if callback is not None:
            callback(i, t, x)
        u = velocity(x, t)
        if sampler == "euler":
            x = x + h * u
        else:
            u_next = velocity(x + h * u, t_next)
            x = x + (0.5 * h) * (u + u_next)
    if callback is not None:
        callback(num_steps, 1.0, x)
    return x


def sample(
    velocity: Velocity, shape: tuple[int, ...], generator: torch.Generator, num_steps: int,
    sampler: str = "euler", device: torch.device | str = "cpu", callback: FlowCallback | None = None,
) -> torch.Tensor:
    """Samples of `shape` (N, ...): x_0 ~ N(0, I) drawn from `generator` (the only draw), then `integrate`."""
    x_0 = seeding.randn(shape, generator, device)
    return integrate(velocity, x_0, num_steps, sampler, callback)


def guided_velocity(
    predict: ConditionalVelocity, condition: torch.Tensor, uncond: torch.Tensor, guidance: float | None,
) -> Velocity:
    """The velocity for `condition` (N, ...), with CFG at scale `guidance` against `uncond` (same
    shape) when it is not None: u_u + g (u_c - u_u), both halves in one call of `predict`; u_c alone
    where `sampling.needs_unconditional` says the unconditional half is not needed (g = 1)."""
    if not needs_unconditional(guidance):
        return lambda x, t: predict(x, t, condition)

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        both = predict(torch.cat([x, x]), t, torch.cat([condition, uncond]))
        conditional, unconditional = both.chunk(2)
        return guide(conditional, unconditional, guidance)

    return velocity
