"""Sampling Part B's flow-matching UNets with `flow_sampling`: batches of digits from one generator.

The network runs as Part B's DDPM samplers run theirs (`partb_sampling.inference_unet`: BatchNorm
folded, channels_last and bf16 autocast where that is fast); the ODE arithmetic stays float32.
Samples are drawn batch after batch from one generator on the CPU, so they depend on (seed, batch
size) only.
"""

from __future__ import annotations

import time

import torch

from diffusion_lab import flow_sampling
from diffusion_lab.experiments.partb_sampling import SampleResult, inference_unet
from diffusion_lab.mnist.precision import autocast
from diffusion_lab.mnist.unet import one_hot


class FlowModel:
    """A flow-matching UNet ready to sample: forward(x (N,1,28,28), t (N,) in [0, 1], and c (N,10) when class-conditioned) -> u."""

    sample_shape = (1, 28, 28)

    def __init__(self, unet: torch.nn.Module, device: torch.device | str = "cpu", precision: str = "auto"):
        self.device = torch.device(device)
        self.unet, self.precision = inference_unet(unet, self.device, precision)
        self.unet.eval()
        self.num_classes = getattr(unet, "num_classes", 0)  # 0: the time-conditioned UNet

    @torch.no_grad()
    def predict(self, x: torch.Tensor, t: float, condition: torch.Tensor | None = None) -> torch.Tensor:
        """u_theta(x, t) (N,1,28,28) float32; condition: one-hot rows (N, 10), zero rows unconditional."""
        t_net = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
        with autocast(self.device, self.precision):
            u = self.unet(x, t_net) if not self.num_classes else self.unet(x, t_net, condition.to(x.device, x.dtype))
        return u.to(x.dtype)

    def velocity(self, digits: torch.Tensor, guidance: float | None) -> flow_sampling.Velocity:
        """The velocity field for `digits` (N,) (-1 = unconditional), with CFG at `guidance` when it
        is not None; the time-conditioned UNet takes no digits and no guidance."""
        if not self.num_classes:
            if bool((digits != -1).any()) or guidance is not None:
                raise ValueError("the time-conditioned flow model has no class input: no digits, no guidance")
            return lambda x, t: self.predict(x, t)
        condition = one_hot(digits, self.num_classes).to(self.device)
        return flow_sampling.guided_velocity(self.predict, condition, torch.zeros_like(condition), guidance)


def sample_flow_digits(
    model: FlowModel,
    generator: torch.Generator,
    *,
    num_steps: int,
    sampler: str = "euler",
    labels: torch.Tensor | None = None,
    num_samples: int | None = None,
    guidance_scale: float | None = None,
    batch_size: int = 500,
    frame_every: int | None = None,
) -> SampleResult:
    """Samples of the digits `labels` (N,) with CFG at `guidance_scale`, or `num_samples`
    unconditional ones, by `num_steps` steps of `sampler` from t = 0 to 1.

    frame_every: also keep x before every this many steps, and the final samples; the result's
    `frame_steps` are then the step indices of the frames (0 = pure noise, num_steps = the end)."""
    if (labels is None) == (num_samples is None):
        raise ValueError("give either labels or num_samples")
    count = labels.shape[0] if labels is not None else num_samples
    digits = labels if labels is not None else torch.full((count,), -1, dtype=torch.long)
    guidance = guidance_scale if model.num_classes else None
    samples, frames, frame_steps = [], [], []
    started = time.perf_counter()
    for begin in range(0, count, batch_size):
        batch = digits[begin : begin + batch_size]
        kept: list[tuple[int, torch.Tensor]] = []

        def keep(i: int, _t: float, x: torch.Tensor) -> None:
            if i % frame_every == 0 or i == num_steps:
                kept.append((i, x.float().cpu()))

        x = flow_sampling.sample(model.velocity(batch, guidance), (len(batch), *model.sample_shape), generator,
                                 num_steps, sampler, model.device, callback=keep if frame_every else None)
        samples.append(x.float().cpu())
        if frame_every:
            frames.append(torch.stack([frame for _, frame in kept]))
            frame_steps = [i for i, _ in kept]
    wall = time.perf_counter() - started
    passes = 2 if guidance is not None else 1
    return SampleResult(
        samples=torch.cat(samples),
        frames=torch.cat(frames, dim=1) if frames else None,
        frame_steps=frame_steps,
        labels=labels,
        guidance_scale=guidance,
        wall_time_s=wall,
        images_per_s=count / wall,
        network_evaluations=passes * flow_sampling.evaluations_per_sample(sampler, num_steps) * count,
    )
