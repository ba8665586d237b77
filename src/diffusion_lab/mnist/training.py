"""Training loops for Part B: the one-step denoiser (B1.2), the two DDPMs (B2.2, B2.4) and the
two flow-matching models of the course's current Part B.

Randomness: every draw comes from a CPU generator derived from (seed, "<run>/<purpose>"):
weight init, the training subset, the shuffle and the noise each have their own, so changing
one never shifts another. On the CPU a seed and a thread count give bit-identical losses and
weights (oneDNN may sum in another order with another count of threads); CUDA convolution
backward passes are not bitwise deterministic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from diffusion_lab import seeding
from diffusion_lab.mnist.data import MnistSplits
from diffusion_lab.mnist import flow_matching
from diffusion_lab.mnist.ddpm import DDPMSchedule, class_conditioned_loss, time_conditioned_loss
from diffusion_lab.mnist.ema import WeightAverage
from diffusion_lab.mnist.precision import autocast, memory_format, resolve_precision
from diffusion_lab.mnist.recipes import DDPMRecipe, DenoiserRecipe, FlowMatchingRecipe, UNetRecipe
from diffusion_lab.mnist.unet import (
    ClassConditionalUNet,
    TimeConditionalUNet,
    UnconditionalUNet,
    count_parameters,
)

# batch_loss(model, images, labels, noise_generator) -> scalar loss
BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class TrainingResult:
    """model: the final model, eval mode, on the training device.
    checkpoints: epoch -> CPU state_dict after that epoch (the final epoch included).
    ema_checkpoints: the same epochs -> the weights' moving average then; empty without an EMA.
    losses: one float per optimizer step, in order."""

    model: nn.Module
    checkpoints: dict[int, dict[str, torch.Tensor]]
    ema_checkpoints: dict[int, dict[str, torch.Tensor]]
    checkpoint_labels: dict[int, str]
    losses: list[float]
    steps_per_epoch: int
    wall_time_s: float
    images_per_s: float
    num_images_seen: int
    precision: str
    device: str
    num_parameters: int
    seed: int
    recipe: dict = field(default_factory=dict)

    def epoch_mean_losses(self) -> list[float]:
        n = self.steps_per_epoch
        return [sum(self.losses[i : i + n]) / len(self.losses[i : i + n]) for i in range(0, len(self.losses), n)]

    def summary(self) -> dict:
        """What a training run reports: cost, size, checkpoints and the last epoch's mean loss (JSON-able)."""
        return {
            "wall_time_s": self.wall_time_s,
            "images_per_s": self.images_per_s,
            "num_images_seen": self.num_images_seen,
            "precision": self.precision,
            "device": self.device,
            "num_parameters": self.num_parameters,
            "steps_per_epoch": self.steps_per_epoch,
            "checkpoint_labels": {str(epoch): label for epoch, label in self.checkpoint_labels.items()},
            "final_epoch_loss": self.epoch_mean_losses()[-1],
        }


# --- models and schedules from recipes (also how a cached state_dict is reloaded) ------------


def seeded(factory: Callable[[], nn.Module], seed: int, name: str) -> nn.Module:
    """Build a module with its weight init drawn from a derived seed, leaving global RNG alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.derived_seed(seed, name))
        return factory()


def make_denoiser(recipe: DenoiserRecipe) -> UnconditionalUNet:
    return UnconditionalUNet(in_channels=1, num_hiddens=recipe.num_hiddens)


def make_ddpm_unet(recipe: UNetRecipe, conditional: bool) -> nn.Module:
    """The course's time- (conditional=False) or class-conditioned UNet at the recipe's width; the
    flow-matching models use the same two."""
    if conditional:
        return ClassConditionalUNet(in_channels=1, num_classes=10, num_hiddens=recipe.num_hiddens)
    return TimeConditionalUNet(in_channels=1, num_hiddens=recipe.num_hiddens)


def schedule_for(recipe: DDPMRecipe) -> DDPMSchedule:
    return DDPMSchedule(recipe.num_timesteps, recipe.beta1, recipe.beta2)


# --- the one training loop -------------------------------------------------------------------


def training_subset(data: MnistSplits, size: int | None, seed: int, run_name: str):
    """The first `size` training images and labels of a permutation drawn for (seed, run_name);
    all of them when size is None."""
    images, labels = data.train_images, data.train_labels
    if size is None or size >= images.shape[0]:
        return images, labels
    keep = torch.randperm(images.shape[0], generator=seeding.make_generator(seed, f"{run_name}/subset"))[:size]
    return images[keep], labels[keep]


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_loss: BatchLoss,
    *,
    run_name: str,
    seed: int,
    batch_size: int,
    epochs: int,
    learning_rate: float,
    lr_gamma: float | None = None,
    lr_schedule: str = "exponential",
    warmup_fraction: float = 0.3,
    ema_decay: float | None = None,
    checkpoint_epochs: tuple[int, ...] = (),
    checkpoint_labels: tuple[str, ...] = (),
    device: torch.device | str = "cpu",
    precision: str = "auto",
    progress: bool = True,
    recipe: dict | None = None,
) -> TrainingResult:
    """Adam over shuffled minibatches.

    lr_schedule "exponential": ExponentialLR(lr_gamma) stepped once per epoch if lr_gamma is given
    (the course's); "one_cycle": stepped every batch, a linear warm-up from learning_rate / 25 over
    `warmup_fraction` of all steps, then a cosine decay to learning_rate / 1e4 at the last step.
    ema_decay: also keep an exponential moving average of the weights (`ema.WeightAverage`, with
    its warm-up); its state at each checkpoint goes to `ema_checkpoints`. It never changes the
    training trajectory: `checkpoints` are the same bits with or without it."""
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    shuffle_generator = seeding.make_generator(seed, f"{run_name}/shuffle")
    noise_generator = seeding.make_generator(seed, f"{run_name}/noise")

    model = model.to(device).to(memory_format=memory_format(precision)).train()
    # One fused kernel for all parameters instead of a loop over them: the same update rule.
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True)
    images = images.to(device)
    labels = labels.to(device)
    n = images.shape[0]
    steps_per_epoch = -(-n // batch_size)
    epoch_scheduler, step_scheduler = _lr_schedulers(
        optimizer, lr_schedule, lr_gamma, learning_rate, epochs * steps_per_epoch, warmup_fraction)
    average = WeightAverage(model, ema_decay) if ema_decay is not None else None
    labels_for = dict(zip(checkpoint_epochs, checkpoint_labels))

    losses: list[float] = []
    checkpoints: dict[int, dict[str, torch.Tensor]] = {}
    ema_checkpoints: dict[int, dict[str, torch.Tensor]] = {}
    started = time.perf_counter()
    with tqdm(total=epochs * steps_per_epoch, disable=not progress, desc=run_name, leave=False) as bar:
        for epoch in range(1, epochs + 1):
            order = torch.randperm(n, generator=shuffle_generator).to(device)
            epoch_losses = []
            for begin in range(0, n, batch_size):
                index = order[begin : begin + batch_size]
                with autocast(device, precision):
                    loss = batch_loss(model, images[index], labels[index], noise_generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if step_scheduler is not None:
                    step_scheduler.step()
                if average is not None:
                    average.update(model)
                epoch_losses.append(loss.detach())
                bar.update(1)
                if len(epoch_losses) % 25 == 0:
                    bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}")
            losses.extend(torch.stack(epoch_losses).float().cpu().tolist())
            if epoch_scheduler is not None:
                epoch_scheduler.step()
            if epoch in checkpoint_epochs or epoch == epochs:
                checkpoints[epoch] = cpu_state_dict(model)
                if average is not None:
                    ema_checkpoints[epoch] = average.state_dict(model)
    wall = time.perf_counter() - started

    model = model.to(memory_format=torch.contiguous_format).eval()
    return TrainingResult(
        model=model,
        checkpoints=checkpoints,
        ema_checkpoints=ema_checkpoints,
        checkpoint_labels={epoch: labels_for.get(epoch, f"epoch {epoch} of {epochs}") for epoch in checkpoints},
        losses=losses,
        steps_per_epoch=steps_per_epoch,
        wall_time_s=wall,
        images_per_s=epochs * n / wall,
        num_images_seen=epochs * n,
        precision=precision,
        device=str(device),
        num_parameters=count_parameters(model),
        seed=seed,
        recipe=recipe or {},
    )


LR_SCHEDULES = ("exponential", "one_cycle")


def _lr_schedulers(optimizer, lr_schedule: str, lr_gamma: float | None, learning_rate: float, total_steps: int,
                   warmup_fraction: float):
    """(per-epoch scheduler, per-step scheduler) for `fit`; either may be None."""
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


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu").contiguous().clone() for key, value in model.state_dict().items()}


# --- Part B runs -----------------------------------------------------------------------------


def train_denoiser(
    recipe: DenoiserRecipe, data: MnistSplits, device: torch.device | str = "cpu", seed: int = 0, progress: bool = True
) -> TrainingResult:
    """B1.2: minimize || D(x + sigma eps) - x ||^2."""
    run_name = "denoiser"
    images, labels = training_subset(data, recipe.train_subset, seed, run_name)
    sigma = recipe.sigma

    def batch_loss(model, x, _labels, generator):
        z = x + sigma * seeding.randn(x.shape, generator, x.device)
        return F.mse_loss(model(z).float(), x)

    model = seeded(lambda: make_denoiser(recipe), seed, f"{run_name}/init")
    return fit(
        model, images, labels, batch_loss,
        run_name=run_name, seed=seed, batch_size=recipe.batch_size, epochs=recipe.epochs,
        learning_rate=recipe.learning_rate, checkpoint_epochs=recipe.checkpoint_epochs,
        checkpoint_labels=recipe.checkpoint_labels, device=device, precision=recipe.precision,
        progress=progress, recipe=recipe.to_dict(),
    )


def train_ddpm(
    recipe: DDPMRecipe,
    data: MnistSplits,
    device: torch.device | str = "cpu",
    seed: int = 0,
    conditional: bool = False,
    progress: bool = True,
    warm_start: dict[str, torch.Tensor] | None = None,
) -> TrainingResult:
    """B2.2 (conditional=False) or B2.4 (conditional=True, class dropout p_uncond).

    warm_start: a trained time-conditioned UNet's state to start the class-conditioned one from
    (`warm_started_class_unet`) instead of a random init."""
    schedule = schedule_for(recipe)

    if conditional:
        def batch_loss(model, x, y, generator):
            return class_conditioned_loss(model, schedule, x, y, generator, recipe.p_uncond, recipe.min_snr_gamma,
                                          recipe.min_snr_floor)
    else:
        def batch_loss(model, x, _labels, generator):
            return time_conditioned_loss(model, schedule, x, generator, recipe.min_snr_gamma, recipe.min_snr_floor)

    run_name = "class_ddpm" if conditional else "time_ddpm"
    return _train_unet(recipe, data, run_name, batch_loss, device, seed, conditional, progress, warm_start)


def train_flow_matching(
    recipe: FlowMatchingRecipe,
    data: MnistSplits,
    device: torch.device | str = "cpu",
    seed: int = 0,
    conditional: bool = False,
    progress: bool = True,
    warm_start: dict[str, torch.Tensor] | None = None,
) -> TrainingResult:
    """The course's time-conditioned (conditional=False) or class-conditioned flow matching: the
    UNet regresses x_1 - x_0 at x_t = (1 - t) x_0 + t x_1 (`mnist.flow_matching`); warm_start as
    in `train_ddpm`."""
    if conditional:
        def batch_loss(model, x, y, generator):
            return flow_matching.class_conditioned_loss(model, x, y, generator, recipe.p_uncond,
                                                        recipe.time_distribution)
    else:
        def batch_loss(model, x, _labels, generator):
            return flow_matching.time_conditioned_loss(model, x, generator, recipe.time_distribution)

    run_name = "class_flow" if conditional else "time_flow"
    return _train_unet(recipe, data, run_name, batch_loss, device, seed, conditional, progress, warm_start)


def _train_unet(recipe: UNetRecipe, data: MnistSplits, run_name: str, batch_loss: BatchLoss,
                device: torch.device | str, seed: int, conditional: bool, progress: bool,
                warm_start: dict[str, torch.Tensor] | None) -> TrainingResult:
    """`fit` a freshly seeded (or warm-started) time- or class-conditioned UNet on `batch_loss`."""
    images, labels = training_subset(data, recipe.train_subset, seed, run_name)
    model = seeded(lambda: make_ddpm_unet(recipe, conditional), seed, f"{run_name}/init")
    if warm_start is not None:
        if not conditional:
            raise ValueError("only the class-conditioned UNet starts from another model")
        model = warm_started_class_unet(model, warm_start)
    return fit(
        model, images, labels, batch_loss,
        run_name=run_name, seed=seed, batch_size=recipe.batch_size, epochs=recipe.epochs,
        learning_rate=recipe.learning_rate, lr_gamma=recipe.lr_gamma, lr_schedule=recipe.lr_schedule,
        warmup_fraction=recipe.warmup_fraction, ema_decay=recipe.ema_decay,
        checkpoint_epochs=recipe.checkpoint_epochs, checkpoint_labels=recipe.checkpoint_labels,
        device=device, precision=recipe.precision, progress=progress,
        recipe={**recipe.to_dict(), "conditional": conditional},
    )


@torch.no_grad()
def warm_started_class_unet(model: ClassConditionalUNet, time_state: dict[str, torch.Tensor]) -> ClassConditionalUNet:
    """`model` with a time-conditioned UNet's weights in every layer the two share, and class
    embeddings that start as the identity: the last Linear of c1 and c2 has zero weights and unit
    bias, so c1(c) = c2(c) = 1 for every c and the model begins as exactly the time-conditioned one;
    training then teaches the scales to depend on the class."""
    try:
        missing, unexpected = model.load_state_dict(time_state, strict=False)
    except RuntimeError as error:  # a tensor of another shape: another width
        raise ValueError(f"not a time-conditioned UNet of this width: {str(error).splitlines()[-1].strip()}") from None
    if unexpected or any(not key.startswith(("c1.", "c2.")) for key in missing):
        raise ValueError(f"not a time-conditioned UNet of this width: missing {missing}, unexpected {unexpected}")
    for block in (model.c1, model.c2):
        block[-1].weight.zero_()
        block[-1].bias.fill_(1.0)
    return model


@torch.no_grad()
def denoise(
    model: nn.Module, noisy: torch.Tensor, device: torch.device | str = "cpu", batch_size: int = 1000,
    precision: str = "auto",
) -> torch.Tensor:
    """Run the one-step denoiser over `noisy` in batches; returns CPU float32."""
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    model = model.to(device).eval()
    outputs = []
    for begin in range(0, noisy.shape[0], batch_size):
        with autocast(device, precision):
            outputs.append(model(noisy[begin : begin + batch_size].to(device)).float().cpu())
    return torch.cat(outputs)
