"""Class dropout for classifier-free guidance, shared by the class-conditioned DDPM (B2.4) and flow
matching losses: each training row's one-hot class is zeroed with probability p_uncond, so the same
network also learns the unconditional estimate that guidance subtracts.

In two phases, as the losses are (`ddpm.draw_ddpm_batch`, `flow_matching.draw_flow_batch`): the
mask is drawn on the CPU from the explicit generator, the condition is built on the labels' device
without waiting for the host.
"""

from __future__ import annotations

import torch


def draw_keep_mask(batch_size: int, generator: torch.Generator, p_uncond: float) -> torch.Tensor:
    """(batch_size,) float32 on the CPU: 0 with probability p_uncond (the row's class dropped), else 1."""
    return (torch.rand(batch_size, generator=generator) >= p_uncond).float()


def dropped_one_hot(labels: torch.Tensor, keep: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, num_classes) float32: `unet.one_hot(labels)` (labels (N,) int64 in [0, num_classes)) with
    the rows where keep (N,) is 0 zeroed, on the labels' device. The same 0/1 values as one_hot, built
    by a comparison because one_hot's masked assignment waits for the host."""
    classes = torch.arange(num_classes, device=labels.device)
    return (labels[:, None] == classes).float() * keep[:, None]
