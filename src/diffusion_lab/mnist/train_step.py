"""One optimisation step of Part B's training: what `training.fit` runs once per batch and what
benchmarks/bench_partb_train.py times (eagerly, compiled, or captured whole in a CUDA graph).

A recipe's loss (`RecipeLoss`) is one of the two-phase losses of `ddpm`, `flow_matching` and
`denoiser` under the recipe's settings:

- `draw(shape, generator)`: the loss's host phase (`ddpm.draw_ddpm_batch` and the others): every
  random number the step needs, from one CPU generator, and the host-side arithmetic on them, as a
  flat dict of CPU tensors by name (the form a CUDA graph's static buffers take);
- `loss(model, images, labels, draws)`: the loss's device phase (`ddpm.ddpm_loss_from` and the
  others) on those tensors, which never waits for the host.

Called with a generator, a `RecipeLoss` is a `BatchLoss`: the module's one-step loss
(`ddpm.time_conditioned_loss` and the others), bit for bit. `TrainStep` is the step around any
`BatchLoss`: the loss under autocast, backward, Adam, then the per-step learning-rate schedule and
the weights' EMA.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from diffusion_lab.mnist.ddpm import DDPMDraws, DDPMSchedule, ddpm_loss_from, draw_ddpm_batch
from diffusion_lab.mnist.denoiser import DenoiserDraws, denoiser_loss_from, draw_denoiser_batch
from diffusion_lab.mnist.ema import WeightAverage
from diffusion_lab.mnist.flow_matching import FlowDraws, draw_flow_batch, flow_loss_from
from diffusion_lab.mnist.precision import autocast, memory_format

# batch_loss(model, images, labels, noise_generator) -> scalar loss
BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
Draws = dict[str, torch.Tensor]


# --- the recipes' losses, in two phases --------------------------------------------------------


class RecipeLoss(abc.ABC):
    """A Part B training loss under a recipe's settings, its phases seen as `Draws`. A subclass names
    its draws' dataclass (`draws_type`) and its two phases (`draw_batch`, `loss_from`)."""

    draws_type: type

    @abc.abstractmethod
    def draw_batch(self, shape: torch.Size, generator: torch.Generator) -> Any:
        """The loss's host phase: a `draws_type` of CPU tensors for a batch of `shape` (N, 1, 28, 28)."""

    @abc.abstractmethod
    def loss_from(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, draws: Any) -> torch.Tensor:
        """The loss's device phase on a `draws_type` on the images' device."""

    def draw(self, shape: torch.Size, generator: torch.Generator) -> Draws:
        """One step's draws for a batch of `shape` (N, 1, 28, 28), as CPU tensors with N rows by
        field name (the fields that are None left out)."""
        drawn = self.draw_batch(shape, generator)
        return {name: value for name, value in vars(drawn).items() if value is not None}

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             draws: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The scalar loss of images (N, 1, 28, 28) in [0, 1] and labels (N,) int64, given `draws` (as
        `draw` gives them, other keys ignored) on their device; no host synchronisation."""
        fields = dataclasses.fields(self.draws_type)
        return self.loss_from(model, images, labels, self.draws_type(**{f.name: draws.get(f.name) for f in fields}))

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        """The loss as a `BatchLoss`: draw, move the draws to the images' device, compute."""
        return self.loss_from(model, images, labels, self.draw_batch(images.shape, generator).to(images.device))


@dataclass(frozen=True)
class DenoiserLoss(RecipeLoss):
    """B1.2: `denoiser.denoiser_loss_from` at noise level sigma."""

    sigma: float
    draws_type = DenoiserDraws

    def draw_batch(self, shape, generator):
        return draw_denoiser_batch(shape, generator)

    def loss_from(self, model, images, labels, draws):
        return denoiser_loss_from(model, images, self.sigma, draws)


@dataclass(frozen=True)
class DDPMLoss(RecipeLoss):
    """B2.2 (p_uncond None) / B2.4: `ddpm.time_conditioned_loss` / `class_conditioned_loss`, with the
    recipe's class dropout and Min-SNR weights."""

    schedule: DDPMSchedule
    p_uncond: float | None = None
    min_snr_gamma: float | None = None
    min_snr_floor: float = 0.0
    draws_type = DDPMDraws

    def draw_batch(self, shape, generator):
        return draw_ddpm_batch(self.schedule, shape, generator, self.p_uncond, self.min_snr_gamma, self.min_snr_floor)

    def loss_from(self, model, images, labels, draws):
        return ddpm_loss_from(model, images, labels, draws)


@dataclass(frozen=True)
class FlowLoss(RecipeLoss):
    """Flow matching: `flow_matching.time_conditioned_loss` (p_uncond None) / `class_conditioned_loss`."""

    p_uncond: float | None = None
    time_distribution: str = "uniform"
    draws_type = FlowDraws

    def draw_batch(self, shape, generator):
        return draw_flow_batch(shape, generator, self.p_uncond, self.time_distribution)

    def loss_from(self, model, images, labels, draws):
        return flow_loss_from(model, images, labels, draws)


# --- the step ------------------------------------------------------------------------------------


class TrainStep:
    """One optimisation step on a placed model: `step(images, labels, generator)` returns the loss
    (a 0-dim tensor on the device, not yet read by the host).

    It is `descend` (the loss under autocast, backward, the optimizer's step: what a CUDA graph
    captures) then `advance` (the per-step learning-rate schedule and the EMA, on the host).
    `network` is the module the loss calls: the model, or a wrapper of it such as torch.compile's
    (the EMA and the optimizer keep reading the model itself)."""

    def __init__(self, model: nn.Module, batch_loss: BatchLoss, optimizer: torch.optim.Optimizer,
                 device: torch.device, precision: str, step_scheduler=None, average: WeightAverage | None = None):
        self.model, self.batch_loss, self.optimizer = model, batch_loss, optimizer
        self.network: nn.Module = model
        self.device, self.precision = torch.device(device), precision
        self.step_scheduler, self.average = step_scheduler, average
        self.autocast_cache = True  # autocast's weight cache must be off while a CUDA graph captures

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        loss = self.descend(lambda model: self.batch_loss(model, images, labels, generator))
        self.advance()
        return loss

    def descend(self, loss_of: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        """loss_of(network) under autocast, then backward and the optimizer's step; the loss."""
        with self._autocast():
            loss = loss_of(self.network)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def advance(self) -> None:
        """What follows each optimizer step on the host: the per-step schedule, the EMA."""
        if self.step_scheduler is not None:
            self.step_scheduler.step()
        if self.average is not None:
            self.average.update(self.model)

    def _autocast(self):
        context = autocast(self.device, self.precision)
        if not self.autocast_cache and isinstance(context, torch.autocast):
            return torch.autocast(self.device.type, dtype=context.fast_dtype, cache_enabled=False)
        return context


LR_SCHEDULES = ("exponential", "one_cycle", "constant")


def make_train_step(
    model: nn.Module,
    batch_loss: BatchLoss,
    *,
    learning_rate: float,
    total_steps: int,
    device: torch.device | str,
    precision: str,
    lr_gamma: float | None = None,
    lr_schedule: str = "exponential",
    warmup_fraction: float = 0.3,
    ema_decay: float | None = None,
    capturable: bool = False,
) -> tuple[TrainStep, torch.optim.lr_scheduler.LRScheduler | None]:
    """`fit`'s step for `model`, placed on the device in the layout for `precision` (resolved) and
    in train mode, with fused Adam, the schedules of `fit` and the EMA; and the per-epoch scheduler
    (or None) that the caller steps after each epoch.

    capturable: the learning rate is a device tensor and Adam capturable, so that a CUDA graph can
    capture the optimizer's step and the schedules still reach it (the benchmark's cuda_graph)."""
    device = torch.device(device)
    model = model.to(device).to(memory_format=memory_format(precision)).train()
    # One fused kernel for all parameters instead of a loop over them: the same update rule.
    if capturable:
        optimizer = torch.optim.Adam(model.parameters(), lr=torch.tensor(learning_rate, device=device),
                                     fused=True, capturable=True)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True)
    epoch_scheduler, step_scheduler = _lr_schedulers(optimizer, lr_schedule, lr_gamma, learning_rate, total_steps,
                                                     warmup_fraction)
    average = WeightAverage(model, ema_decay) if ema_decay is not None else None
    return TrainStep(model, batch_loss, optimizer, device, precision, step_scheduler, average), epoch_scheduler


def _lr_schedulers(optimizer, lr_schedule: str, lr_gamma: float | None, learning_rate: float, total_steps: int,
                   warmup_fraction: float):
    """(per-epoch scheduler, per-step scheduler); either may be None ("constant": both)."""
    if lr_schedule == "constant":
        return None, None
    if lr_schedule == "exponential":
        return (torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=lr_gamma) if lr_gamma else None), None
    if lr_schedule == "one_cycle":
        if not 0.0 < warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in (0, 1), got {warmup_fraction}")
        return None, torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=learning_rate, total_steps=total_steps, pct_start=warmup_fraction,
            anneal_strategy="cos", cycle_momentum=False, div_factor=25.0, final_div_factor=1e4,
        )
    raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {lr_schedule!r}")
