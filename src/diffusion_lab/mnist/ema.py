"""An exponential moving average of a model's weights, with a warm-up.

After optimizer step k (1-based) every floating-point tensor of the state (parameters and
BatchNorm statistics alike) moves as

    ema <- d_k * ema + (1 - d_k) * weights,   d_k = min(decay, (1 + k) / (10 + k))

The warm-up d_k starts at 2/11, so the random initial weights are forgotten within the first
few steps; a fixed decay of 0.999 would still hold (0.999)^1150 = 32% of them after 1,150 steps,
a whole short CPU training run. Integer tensors (BatchNorm's step counter) are copied.
"""

from __future__ import annotations

import torch
from torch import nn


def warmup_decay(decay: float, step: int) -> float:
    """d_k for optimizer step k >= 1: the decay capped by (1 + k) / (10 + k)."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
    if step < 1:
        raise ValueError(f"EMA steps count from 1, got {step}")
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightAverage:
    """The EMA of `model`'s state, kept as detached float32 tensors on the model's device."""

    def __init__(self, model: nn.Module, decay: float):
        warmup_decay(decay, 1)  # checks the decay
        self.decay = decay
        self.steps = 0
        self.state = {key: value.detach().clone().float() if value.is_floating_point() else value.detach().clone()
                      for key, value in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold in the model's current weights; call once after every optimizer step."""
        self.steps += 1
        d = warmup_decay(self.decay, self.steps)
        for key, value in model.state_dict().items():
            average = self.state[key]
            if average.is_floating_point():
                average.mul_(d).add_(value.detach().float(), alpha=1.0 - d)
            else:
                average.copy_(value)

    def state_dict(self, like: nn.Module) -> dict[str, torch.Tensor]:
        """The averaged state on the CPU, in `like`'s dtypes, ready for `load_state_dict`."""
        reference = like.state_dict()
        return {key: value.to("cpu", reference[key].dtype).contiguous().clone() for key, value in self.state.items()}
