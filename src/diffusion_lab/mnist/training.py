"""Training loops for Part B: the one-step denoiser (B1.2), the two DDPMs (B2.2, B2.4) and the
two flow-matching models of the course's current Part B.

Each step of `fit` is a `train_step.TrainStep` (the step benchmarks/bench_partb_train.py times);
the five runs of `RECIPE_RUNS` train on their recipes' losses from `train_step` (the two-phase
losses of `ddpm`, `flow_matching` and `denoiser`).

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
from torch import nn
from tqdm.auto import tqdm

from diffusion_lab import seeding
from diffusion_lab.mnist.data import MnistSplits
from diffusion_lab.mnist.ddpm import DDPMSchedule
from diffusion_lab.mnist.precision import autocast, resolve_precision
from diffusion_lab.mnist.recipes import DDPMRecipe, DenoiserRecipe, FlowMatchingRecipe, UNetRecipe
from diffusion_lab.mnist.train_step import (
    BatchLoss,
    DDPMLoss,
    DenoiserLoss,
    FlowLoss,
    RecipeLoss,
    make_train_step,
)
from diffusion_lab.mnist.unet import (
    ClassConditionalUNet,
    TimeConditionalUNet,
    UnconditionalUNet,
    count_parameters,
)
from diffusion_lab.mnist.unet_film import TimeFiLMUNet


@dataclass
class TrainingResult:
    """model: the final model, eval mode, on the training device.
    checkpoints: epoch -> CPU state_dict after that epoch (the final epoch included); an epoch is
    whole (an int) or a fraction of training in epochs (a float: 0.2 is after the step that ends
    the first fifth of epoch 1, `checkpoint_step`).
    ema_checkpoints: the same epochs -> the weights' moving average then; empty without an EMA.
    losses: one float per optimizer step, in order."""

    model: nn.Module
    checkpoints: dict[int | float, dict[str, torch.Tensor]]
    ema_checkpoints: dict[int | float, dict[str, torch.Tensor]]
    checkpoint_labels: dict[int | float, str]
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
            "checkpoint_labels": {epoch_key(epoch): label for epoch, label in self.checkpoint_labels.items()},
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
    flow-matching models use the same two. A time-conditioned recipe may ask for the FiLM variant
    (`recipe.architecture`, mnist/unet_film.py); a class-conditioned one is always the course's."""
    if conditional:
        if recipe.architecture != "course":
            raise ValueError(f"the class-conditioned UNet has only the course's architecture, not {recipe.architecture!r}")
        return ClassConditionalUNet(in_channels=1, num_classes=10, num_hiddens=recipe.num_hiddens)
    if recipe.architecture != "course":
        return TimeFiLMUNet(1, recipe.num_hiddens, attention=recipe.architecture == "film_attention")
    return TimeConditionalUNet(in_channels=1, num_hiddens=recipe.num_hiddens)


def schedule_for(recipe: DDPMRecipe) -> DDPMSchedule:
    return DDPMSchedule(recipe.num_timesteps, recipe.beta1, recipe.beta2)


# The Part B runs that train on a `RecipeLoss`, by their run names.
RECIPE_RUNS = ("denoiser", "time_ddpm", "class_ddpm", "time_flow", "class_flow")


def recipe_model(run_name: str, recipe: DenoiserRecipe | UNetRecipe) -> nn.Module:
    """The unseeded network of one of `RECIPE_RUNS` at the recipe's width."""
    if run_name == "denoiser":
        return make_denoiser(recipe)
    _check_run(run_name)
    return make_ddpm_unet(recipe, conditional=run_name.startswith("class_"))


def recipe_loss(run_name: str, recipe: DenoiserRecipe | DDPMRecipe | FlowMatchingRecipe) -> RecipeLoss:
    """The training loss of one of `RECIPE_RUNS` under its recipe (class models: with the recipe's
    class dropout)."""
    if run_name == "denoiser":
        return DenoiserLoss(recipe.sigma)
    _check_run(run_name)
    p_uncond = recipe.p_uncond if run_name.startswith("class_") else None
    if run_name.endswith("_ddpm"):
        return DDPMLoss(schedule_for(recipe), p_uncond, recipe.min_snr_gamma, recipe.min_snr_floor)
    return FlowLoss(p_uncond, recipe.time_distribution)


def _check_run(run_name: str) -> None:
    if run_name not in RECIPE_RUNS:
        raise ValueError(f"run must be one of {', '.join(RECIPE_RUNS)}, got {run_name!r}")


def optimizer_settings(recipe: DenoiserRecipe | UNetRecipe) -> dict:
    """`fit`'s learning-rate and EMA arguments for a Part B recipe: the denoiser keeps its rate; a
    UNet has its recipe's schedule and, if any, EMA."""
    if isinstance(recipe, UNetRecipe):
        return {"learning_rate": recipe.learning_rate, "lr_gamma": recipe.lr_gamma, "lr_schedule": recipe.lr_schedule,
                "warmup_fraction": recipe.warmup_fraction, "ema_decay": recipe.ema_decay}
    return {"learning_rate": recipe.learning_rate}


# --- the one training loop -------------------------------------------------------------------


def training_subset(data: MnistSplits, size: int | None, seed: int, run_name: str):
    """The first `size` training images and labels of a permutation drawn for (seed, run_name);
    all of them when size is None."""
    images, labels = data.train_images, data.train_labels
    if size is None or size >= images.shape[0]:
        return images, labels
    keep = torch.randperm(images.shape[0], generator=seeding.make_generator(seed, f"{run_name}/subset"))[:size]
    return images[keep], labels[keep]


def epoch_number(epoch: int | float | str) -> int | float:
    """A checkpoint's epoch as one number: an int when whole (1, 1.0 and "1" -> 1), else a float
    ("0.2" -> 0.2), so that it names the same checkpoint however it was written."""
    value = float(epoch)
    return int(value) if value.is_integer() else value


def epoch_key(epoch: int | float | str) -> str:
    """The string a checkpoint's epoch is stored under: "1", "0.2" (never "1.0")."""
    return str(epoch_number(epoch))


def checkpoint_step(epoch: int | float, steps_per_epoch: int) -> int:
    """The optimizer step (counted from 1 over all of training) after which the checkpoint at
    `epoch` is kept: the step that ends that much of training, the last of the epoch when whole."""
    # rounded first: in floats 0.1 * 10 is 1.0000000000000002, which must not become step 2
    return int(-(-round(epoch * steps_per_epoch, 6) // 1))


def checkpoint_steps(checkpoint_epochs, epochs: int, steps_per_epoch: int) -> dict[int, int | float]:
    """step -> epoch of every checkpoint `fit` keeps: those asked for and the end of training.
    Refuses an epoch outside (0, epochs] and two epochs that end on the same step."""
    steps: dict[int, int | float] = {}
    for epoch in (*checkpoint_epochs, epochs):
        epoch = epoch_number(epoch)
        if not 0 < epoch <= epochs:
            raise ValueError(f"a checkpoint's epoch must lie in (0, {epochs}], got {epoch}")
        step = max(1, checkpoint_step(epoch, steps_per_epoch))
        if steps.get(step, epoch) != epoch:
            raise ValueError(f"checkpoints at epochs {steps[step]} and {epoch} both fall after step {step} "
                             f"({steps_per_epoch} steps per epoch)")
        steps[step] = epoch
    return dict(sorted(steps.items()))


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
    checkpoint_epochs: tuple[int | float, ...] = (),
    checkpoint_labels: tuple[str, ...] = (),
    device: torch.device | str = "cpu",
    precision: str = "auto",
    progress: bool = True,
    recipe: dict | None = None,
) -> TrainingResult:
    """Adam over shuffled minibatches.

    lr_schedule "exponential": ExponentialLR(lr_gamma) stepped once per epoch if lr_gamma is given
    (the course's); "one_cycle": stepped every batch, a linear warm-up from learning_rate / 25 over
    `warmup_fraction` of all steps, then a cosine decay to learning_rate / 1e4 at the last step;
    "constant": learning_rate throughout.
    checkpoint_epochs: the weights are kept after the step that ends each of these epochs, whole or
    fractional (`checkpoint_steps`), and at the end; keeping them never changes training.
    ema_decay: also keep an exponential moving average of the weights (`ema.WeightAverage`, with
    its warm-up); its state at each checkpoint goes to `ema_checkpoints`. It never changes the
    training trajectory: `checkpoints` are the same bits with or without it."""
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    shuffle_generator = seeding.make_generator(seed, f"{run_name}/shuffle")
    noise_generator = seeding.make_generator(seed, f"{run_name}/noise")

    images = images.to(device)
    labels = labels.to(device)
    n = images.shape[0]
    steps_per_epoch = -(-n // batch_size)
    step, epoch_scheduler = make_train_step(
        model, batch_loss, learning_rate=learning_rate, total_steps=epochs * steps_per_epoch, device=device,
        precision=precision, lr_gamma=lr_gamma, lr_schedule=lr_schedule, warmup_fraction=warmup_fraction,
        ema_decay=ema_decay)
    model, average = step.model, step.average
    labels_for = {epoch_number(epoch): label for epoch, label in zip(checkpoint_epochs, checkpoint_labels)}
    keep_after = checkpoint_steps(checkpoint_epochs, epochs, steps_per_epoch)

    losses: list[float] = []
    checkpoints: dict[int | float, dict[str, torch.Tensor]] = {}
    ema_checkpoints: dict[int | float, dict[str, torch.Tensor]] = {}
    steps_done = 0
    started = time.perf_counter()
    with tqdm(total=epochs * steps_per_epoch, disable=not progress, desc=run_name, leave=False) as bar:
        for epoch in range(1, epochs + 1):
            order = torch.randperm(n, generator=shuffle_generator).to(device)
            epoch_losses = []
            for begin in range(0, n, batch_size):
                index = order[begin : begin + batch_size]
                loss = step(images[index], labels[index], noise_generator)
                epoch_losses.append(loss.detach())
                steps_done += 1
                bar.update(1)
                if len(epoch_losses) % 25 == 0:
                    bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}")
                # the per-epoch schedule below moves the learning rate, not the weights, so an
                # epoch's last step keeps the weights the epoch ends with
                if steps_done in keep_after:
                    checkpoints[keep_after[steps_done]] = cpu_state_dict(model)
                    if average is not None:
                        ema_checkpoints[keep_after[steps_done]] = average.state_dict(model)
            losses.extend(torch.stack(epoch_losses).float().cpu().tolist())
            if epoch_scheduler is not None:
                epoch_scheduler.step()
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


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu").contiguous().clone() for key, value in model.state_dict().items()}


# --- Part B runs -----------------------------------------------------------------------------


def train_denoiser(
    recipe: DenoiserRecipe, data: MnistSplits, device: torch.device | str = "cpu", seed: int = 0, progress: bool = True
) -> TrainingResult:
    """B1.2: minimize || D(x + sigma eps) - x ||^2."""
    run_name = "denoiser"
    images, labels = training_subset(data, recipe.train_subset, seed, run_name)
    model = seeded(lambda: recipe_model(run_name, recipe), seed, f"{run_name}/init")
    return fit(
        model, images, labels, recipe_loss(run_name, recipe),
        run_name=run_name, seed=seed, batch_size=recipe.batch_size, epochs=recipe.epochs,
        **optimizer_settings(recipe), checkpoint_epochs=recipe.checkpoint_epochs,
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
    run_name = "class_ddpm" if conditional else "time_ddpm"
    return _train_unet(recipe, data, run_name, device, seed, progress, warm_start)


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
    run_name = "class_flow" if conditional else "time_flow"
    return _train_unet(recipe, data, run_name, device, seed, progress, warm_start)


def _train_unet(recipe: UNetRecipe, data: MnistSplits, run_name: str, device: torch.device | str, seed: int,
                progress: bool, warm_start: dict[str, torch.Tensor] | None) -> TrainingResult:
    """`fit` a freshly seeded (or warm-started) time- or class-conditioned UNet on its recipe's loss."""
    conditional = run_name.startswith("class_")
    images, labels = training_subset(data, recipe.train_subset, seed, run_name)
    model = seeded(lambda: recipe_model(run_name, recipe), seed, f"{run_name}/init")
    if warm_start is not None:
        if not conditional:
            raise ValueError("only the class-conditioned UNet starts from another model")
        model = warm_started_class_unet(model, warm_start)
    return fit(
        model, images, labels, recipe_loss(run_name, recipe),
        run_name=run_name, seed=seed, batch_size=recipe.batch_size, epochs=recipe.epochs,
        **optimizer_settings(recipe), checkpoint_epochs=recipe.checkpoint_epochs, checkpoint_labels=recipe.checkpoint_labels,
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
