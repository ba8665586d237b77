"""B1.2's training loss, the one-step denoiser's L2 loss || D(x + sigma eps) - x ||^2 with
eps ~ N(0, I), in the two phases of Part B's losses (`ddpm.draw_ddpm_batch`, `ddpm.ddpm_loss_from`):
the draw on the CPU from the explicit generator, then the arithmetic on the model's device, which
never waits for the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from diffusion_lab import seeding


@dataclass(frozen=True)
class DenoiserDraws:
    """One batch's draws: noise eps (N, 1, 28, 28) float32 ~ N(0, I)."""

    noise: torch.Tensor

    def to(self, device: torch.device | str) -> DenoiserDraws:
        return DenoiserDraws(self.noise.to(device))


def draw_denoiser_batch(shape: torch.Size, generator: torch.Generator) -> DenoiserDraws:
    """The host phase for a batch of `shape` (N, 1, 28, 28): eps from `generator`, on the CPU."""
    return DenoiserDraws(seeding.randn(shape, generator))


def denoiser_loss_from(model: torch.nn.Module, x: torch.Tensor, sigma: float, draws: DenoiserDraws) -> torch.Tensor:
    """The device phase: || D(x + sigma eps) - x ||^2, mean over pixels and batch; digits x
    (N, 1, 28, 28) in [0, 1], `draws` on x's device."""
    return F.mse_loss(model(x + sigma * draws.noise).float(), x)
