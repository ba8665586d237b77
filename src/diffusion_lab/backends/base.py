"""The one interface between the Part A algorithms and the models that predict noise.

Algorithms (schedule, sampling, editing, illusions) only ever see a `NoiseModel`; they never
know whether DeepFloyd IF or the project's MNIST UNet is behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import torch

VarianceType = Literal["fixed_small", "fixed_large", "learned_range"]


class UnknownPrompt(ValueError):
    """A prompt the backend cannot turn into a condition; the message lists what it understands."""


@dataclass(frozen=True)
class ModelOutput:
    """One network evaluation at (x_t, t, condition).

    eps: the noise estimate, shaped like x_t.
    variance: for `learned_range` models the raw variance channels in [-1, 1] (what diffusers
        calls `predicted_variance`), shaped like x_t; None for models that predict no variance.
    """

    eps: torch.Tensor
    variance: torch.Tensor | None = None


@runtime_checkable
class NoiseModel(Protocol):
    """A pixel-space noise-prediction model with its training schedule.

    Conventions:
    - x_t lives in the model's data space, `data_range` (IF: (-1, 1); MNIST: (0, 1)).
    - `alphas_cumprod` has one entry per training timestep 0..T-1 (float64 on the CPU).
    - A condition is whatever `encode` returns (an embedding, a one-hot row, ...): opaque to
      algorithms. A condition with batch size 1 broadcasts over a batch of x_t.
    """

    name: str
    description: str
    alphas_cumprod: torch.Tensor
    variance_type: VarianceType
    sample_shape: tuple[int, int, int]
    data_range: tuple[float, float]
    device: torch.device
    dtype: torch.dtype

    def strided_timesteps(self) -> list[int]:
        """The backend's default descending timestep list for iterative denoising, ending at 0."""
        ...

    def encode(self, prompt: str) -> Any:
        """The condition for `prompt`; "" is the unconditional one. Raises UnknownPrompt."""
        ...

    def predict(self, x_t: torch.Tensor, t: int, condition: Any) -> ModelOutput:
        """The model's noise (and variance) estimate at integer timestep t.

    Args:
        x_t: (N, C, H, W) noisy images in the model's data range plus noise (`sample_shape` per image).
        t: the timestep, in [0, T).
        condition: what `encode` returned, for one image or for each of the N.

    Returns:
        eps (N, C, H, W) and, for a learned-variance model, variance (N, C, H, W) in [-1, 1].
    """
        ...
