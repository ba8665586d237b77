"""Part B training runs: the one-step denoiser (and its pure-noise twin), the two DDPMs and the two
flow-matching UNets (the judge: judge_training.py).

These are the expensive runs, so this module imports only what training executes: the recipes,
the data, the UNets, the losses and the training loop. A run's cache key covers the code of the
modules its compute function reaches, so editing a sampler, a Part A loop, a measurement or a
page leaves every trained model cached; editing the UNet, a loss or the loop retrains.
"""

from __future__ import annotations

from typing import Callable

import torch

from diffusion_lab.mnist import pure_noise, training
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run


# The files a training run keeps its weights in, per kind of weights: epoch -> state_dict.
CHECKPOINT_FILES = {"raw": "checkpoints.pt", "ema": "ema_checkpoints.pt"}


def _save_training(scratch: Scratch, result: training.TrainingResult) -> dict:
    for kind, checkpoints in (("raw", result.checkpoints), ("ema", result.ema_checkpoints)):
        if checkpoints:
            scratch.save(CHECKPOINT_FILES[kind], {training.epoch_key(epoch): state for epoch, state in checkpoints.items()})
    scratch.save("losses.pt", torch.tensor(result.losses, dtype=torch.float32))
    return result.summary()


def checkpoint_epochs(run: RunRecord) -> list[int | float]:
    """The epochs after which a training run kept its weights, in order: ints, and floats for
    fractions of training (quick's flow models: 0.2, 1, 2; `training.checkpoint_steps`)."""
    return sorted(training.epoch_number(epoch) for epoch in run.metrics["checkpoint_labels"])


def weight_kinds(run: RunRecord) -> list[str]:
    """The weights a DDPM run kept at each checkpoint: "raw", and "ema" when its recipe averages them."""
    return ["raw", "ema"] if run.params["recipe"].get("ema_decay") is not None else ["raw"]


def sampled_weights(run: RunRecord) -> str:
    """The weights the figures sample: the recipe's `sample_weights`."""
    return run.params["recipe"].get("sample_weights", "raw")


def trained_state(run: RunRecord, epoch: int | float | None = None,
                  weights: str | None = None) -> dict[str, torch.Tensor]:
    """A training run's state_dict after `epoch` (default: the last), its raw weights or their EMA
    (default: the ones the recipe samples)."""
    weights = sampled_weights(run) if weights is None else weights
    if weights not in weight_kinds(run):
        raise ValueError(f"this run kept {' and '.join(weight_kinds(run))} weights, not {weights!r}")
    epoch = checkpoint_epochs(run)[-1] if epoch is None else epoch
    return run.load(CHECKPOINT_FILES[weights])[training.epoch_key(epoch)]


def denoiser_training(ctx: BuildContext, progress: bool = True) -> RunRecord:
    """B1.2: the one-step denoiser of the profile's recipe."""
    recipe = ctx.recipes.partb.denoiser

    def compute(scratch: Scratch):
        result = training.train_denoiser(recipe, load_mnist(), ctx.device, scratch.seed, progress)
        return _save_training(scratch, result)

    return cached_run(ctx, "partb/denoiser-training", {"recipe": recipe.to_dict()}, compute)


def ddpm_training(ctx: BuildContext, conditional: bool, progress: bool = True,
                  before_training: Callable[[], None] | None = None) -> RunRecord:
    """B2.2 (time-conditioned) or B2.4 (class-conditioned) DDPM of the profile's recipe.
    before_training: called when the run is not cached, just before training starts (the CLI says
    there that it will train)."""
    return _unet_training(ctx, "ddpm", conditional, progress, before_training)


def pure_noise_training(ctx: BuildContext, progress: bool = True) -> RunRecord:
    """The course's "denoising pure noise": the denoiser's UNet fed z ~ N(0, I) alone."""
    recipe = ctx.recipes.partb.pure_noise

    def compute(scratch: Scratch):
        result = pure_noise.train_pure_noise_denoiser(recipe, load_mnist(), ctx.device, scratch.seed, progress)
        return _save_training(scratch, result)

    return cached_run(ctx, "partb/pure-noise-training", {"recipe": recipe.to_dict()}, compute)


def flow_training(ctx: BuildContext, conditional: bool, progress: bool = True,
                  before_training: Callable[[], None] | None = None) -> RunRecord:
    """The course's time-conditioned (conditional=False) or class-conditioned flow-matching UNet of
    the profile's recipe. before_training: as in `ddpm_training`."""
    return _unet_training(ctx, "flow", conditional, progress, before_training)


def constant_lr_flow_training(ctx: BuildContext, progress: bool = True) -> RunRecord:
    """The time-conditioned flow-matching UNet again, at the profile's constant learning rate
    (`time_flow_constant_lr`: `time_flow` with only the schedule replaced). It trains under the
    time model's own draws ("time_flow/..." seeds), so it starts from the same weights and sees the
    same batches in the same order with the same noise: the runs differ in the schedule alone."""
    recipe = ctx.recipes.partb.time_flow_constant_lr

    def compute(scratch: Scratch):
        result = training.train_flow_matching(recipe, load_mnist(), ctx.device, scratch.seed, False, progress)
        return _save_training(scratch, result)

    return cached_run(ctx, "partb/time-flow-constant-lr-training", {"recipe": recipe.to_dict(), "conditional": False},
                      compute)


# kind -> the recipes' names in PartBRecipes, the `mnist.training` function that trains them, the
# runs' names; pairs are (time-conditioned, class-conditioned).
_UNET_RUNS = {
    "ddpm": (("time_ddpm", "class_ddpm"), "train_ddpm",
             ("partb/time-ddpm-training", "partb/class-ddpm-training")),
    "flow": (("time_flow", "class_flow"), "train_flow_matching",
             ("partb/time-flow-training", "partb/class-flow-training")),
}


def _unet_training(ctx: BuildContext, kind: str, conditional: bool, progress: bool,
                   before_training: Callable[[], None] | None) -> RunRecord:
    """A time- or class-conditioned UNet of `kind`; a warm-started class model starts from the
    weights the figures of the time-conditioned model of the same kind sample."""
    recipe_names, trainer, run_names = _UNET_RUNS[kind]
    recipe = getattr(ctx.recipes.partb, recipe_names[conditional])
    params = {"recipe": recipe.to_dict(), "conditional": conditional}
    start = _unet_training(ctx, kind, False, progress, before_training) if conditional and recipe.warm_start else None
    if start is not None:
        params["warm_start"] = start.key

    def compute(scratch: Scratch):
        if before_training is not None:
            before_training()
        warm_start = trained_state(start) if start is not None else None
        result = getattr(training, trainer)(recipe, load_mnist(), ctx.device, scratch.seed, conditional, progress,
                                            warm_start)
        return _save_training(scratch, result)

    return cached_run(ctx, run_names[conditional], params, compute)
