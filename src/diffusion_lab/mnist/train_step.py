"""One optimisation step of Part B's training: what `training.fit` runs once per batch and what
benchmarks/bench_partb_train.py times (eagerly, compiled, or captured whole in a CUDA graph).

A recipe's loss (`RecipeLoss`) comes in two phases:

- `draw(shape, generator)`: every random number the step needs, from one CPU generator in the
  order the course's losses draw them (`ddpm.time_conditioned_loss` and the others: t, then the
  Gaussian noise, then the class-dropout mask), plus the host-side arithmetic on them (the
  schedule's abar_t and t / T, the Min-SNR weights), as CPU tensors;
- `loss(model, images, labels, draws)`: the loss from those tensors on the model's device. It never
  waits for the host, so a CUDA graph can capture it with the draws in static buffers.

Called with a generator, a `RecipeLoss` is a `BatchLoss` that computes the very bits of the
one-phase losses in `ddpm` and `flow_matching` (tests/test_mnist_training.py holds them equal).
`TrainStep` is the step around any `BatchLoss`: the loss under autocast, backward, Adam, then the
per-step learning-rate schedule and the weights' EMA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from diffusion_lab import seeding
from diffusion_lab.mnist import flow_matching
from diffusion_lab.mnist.ddpm import DDPMSchedule, _epsilon_loss, loss_weights
from diffusion_lab.mnist.ema import WeightAverage
from diffusion_lab.mnist.precision import autocast, memory_format

# batch_loss(model, images, labels, noise_generator) -> scalar loss
BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
Draws = dict[str, torch.Tensor]


# --- the recipes' losses, in two phases --------------------------------------------------------


class RecipeLoss:
    """A Part B training loss split into its draws (host) and its arithmetic (device)."""

    def draw(self, shape: torch.Size, generator: torch.Generator) -> Draws:
        """One step's draws for a batch of `shape` (N, 1, 28, 28), as CPU tensors with N rows."""
        raise NotImplementedError

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, draws: Draws) -> torch.Tensor:
        """The scalar loss of images (N, 1, 28, 28) in [0, 1] and labels (N,) int64, given `draws`
        on their device; no host synchronisation."""
        raise NotImplementedError

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        """The loss as a `BatchLoss`: draw, move the draws to the images' device, compute."""
        draws = {key: value.to(images.device) for key, value in self.draw(images.shape, generator).items()}
        return self.loss(model, images, labels, draws)


def _keep_mask(n: int, generator: torch.Generator, p_uncond: float) -> torch.Tensor:
    """Class dropout: (n,) float32, 0 with probability p_uncond, else 1."""
    return (torch.rand(n, generator=generator) >= p_uncond).float()


def _class_condition(labels: torch.Tensor, keep: torch.Tensor, num_classes: int) -> torch.Tensor:
    """`unet.one_hot(labels)` with the dropped rows zeroed, computed on labels' device (one_hot's
    masked assignment waits for the host); the same 0/1 values."""
    classes = torch.arange(num_classes, device=labels.device)
    return (labels[:, None] == classes).float() * keep[:, None]


@dataclass(frozen=True)
class DenoiserLoss(RecipeLoss):
    """B1.2: || D(x + sigma eps) - x ||^2 with eps ~ N(0, I) (draws: "noise")."""

    sigma: float

    def draw(self, shape, generator):
        return {"noise": seeding.randn(shape, generator)}

    def loss(self, model, images, labels, draws):
        return F.mse_loss(model(images + self.sigma * draws["noise"]).float(), images)


@dataclass(frozen=True)
class DDPMLoss(RecipeLoss):
    """B2.2 (p_uncond None) / B2.4: `ddpm.time_conditioned_loss` / `class_conditioned_loss`.

    draws: "noise" eps (N, 1, 28, 28); "abar" abar_t (N,) float32 and "time" t / T (N,) for
    t ~ U{1..T}; "keep" (N,) the class-dropout mask (class model); "weights" (N,) the Min-SNR
    weights (with min_snr_gamma)."""

    schedule: DDPMSchedule
    p_uncond: float | None = None
    min_snr_gamma: float | None = None
    min_snr_floor: float = 0.0

    def draw(self, shape, generator):
        t = self.schedule.sample_timesteps(shape[0], generator)
        draws = {"noise": seeding.randn(shape, generator)}
        if self.p_uncond is not None:
            draws["keep"] = _keep_mask(shape[0], generator, self.p_uncond)
        # ddpm.q_sample's table lookup, done here because it indexes on the host
        draws["abar"] = self.schedule.zero_based_alphas_cumprod[t - 1].float()
        draws["time"] = self.schedule.net_time(t)
        weights = loss_weights(self.schedule, t, self.min_snr_gamma, self.min_snr_floor)
        if weights is not None:
            draws["weights"] = weights
        return draws

    def loss(self, model, images, labels, draws):
        eps = draws["noise"]
        abar_t = draws["abar"].view(-1, 1, 1, 1)
        x_t = abar_t**0.5 * images + (1 - abar_t) ** 0.5 * eps  # ddpm.q_sample (forward_process.add_noise)
        inputs = (x_t, draws["time"])
        if self.p_uncond is not None:
            inputs += (_class_condition(labels, draws["keep"], model.num_classes),)
        return _epsilon_loss(model(*inputs), eps, draws.get("weights"))


@dataclass(frozen=True)
class FlowLoss(RecipeLoss):
    """Flow matching: `flow_matching.time_conditioned_loss` (p_uncond None) / `class_conditioned_loss`.

    draws: "t" (N,) from `time_distribution`, "noise" x_0 (N, 1, 28, 28), "keep" (class model)."""

    p_uncond: float | None = None
    time_distribution: str = "uniform"

    def draw(self, shape, generator):
        draws = {"t": flow_matching.sample_times(shape[0], generator, self.time_distribution),
                 "noise": seeding.randn(shape, generator)}
        if self.p_uncond is not None:
            draws["keep"] = _keep_mask(shape[0], generator, self.p_uncond)
        return draws

    def loss(self, model, images, labels, draws):
        x_0, t = draws["noise"], draws["t"]
        inputs = (flow_matching.interpolate(x_0, images, t), t)
        if self.p_uncond is not None:
            inputs += (_class_condition(labels, draws["keep"], model.num_classes),)
        return F.mse_loss(model(*inputs).float(), flow_matching.velocity_target(x_0, images))


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
