"""Part B training runs: the one-step denoiser, the two DDPMs and the judge classifier.

These are the expensive runs, so this module imports only what training executes: the recipes,
the data, the UNets, the losses and the training loop. A run's cache key covers the code of the
modules its compute function reaches, so editing a sampler, a Part A loop, a measurement or a
page leaves every trained model cached; editing the UNet, a loss or the loop retrains.
"""

from __future__ import annotations

import torch

from diffusion_lab.mnist import judge as judge_lib, training
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.profiles import get_profile
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run


def _training_metrics(result: training.TrainingResult) -> dict:
    return {
        "wall_time_s": result.wall_time_s,
        "images_per_s": result.images_per_s,
        "num_images_seen": result.num_images_seen,
        "precision": result.precision,
        "device": result.device,
        "num_parameters": result.num_parameters,
        "steps_per_epoch": result.steps_per_epoch,
        "checkpoint_labels": {str(epoch): label for epoch, label in result.checkpoint_labels.items()},
        "final_epoch_loss": result.epoch_mean_losses()[-1],
    }


def _save_training(scratch: Scratch, result: training.TrainingResult) -> dict:
    scratch.save("checkpoints.pt", {str(epoch): state for epoch, state in result.checkpoints.items()})
    scratch.save("losses.pt", torch.tensor(result.losses, dtype=torch.float32))
    return _training_metrics(result)


def denoiser_training(ctx: BuildContext, progress: bool = True) -> RunRecord:
    """B1.2: the one-step denoiser of the profile's recipe."""
    recipe = get_profile(ctx.profile).partb.denoiser

    def compute(scratch: Scratch):
        result = training.train_denoiser(recipe, load_mnist(), ctx.device, scratch.seed, progress)
        return _save_training(scratch, result)

    return cached_run(ctx, "partb/denoiser-training", {"recipe": recipe.to_dict()}, compute)


def ddpm_training(ctx: BuildContext, conditional: bool, progress: bool = True) -> RunRecord:
    """B2.2 (time-conditioned) or B2.4 (class-conditioned) DDPM of the profile's recipe."""
    book = get_profile(ctx.profile).partb
    recipe = book.class_ddpm if conditional else book.time_ddpm

    def compute(scratch: Scratch):
        result = training.train_ddpm(recipe, load_mnist(), ctx.device, scratch.seed, conditional, progress)
        return _save_training(scratch, result)

    name = "partb/class-ddpm-training" if conditional else "partb/time-ddpm-training"
    return cached_run(ctx, name, {"recipe": recipe.to_dict(), "conditional": conditional}, compute)


def judge_training(ctx: BuildContext, progress: bool = True) -> RunRecord:
    """The project's MNIST classifier that scores generated digits, and its test accuracy."""
    recipe = get_profile(ctx.profile).partb.judge

    def compute(scratch: Scratch):
        data = load_mnist()
        result = judge_lib.train_judge(recipe, data, ctx.device, scratch.seed, progress)
        trained = judge_lib.Judge(result.model, ctx.device)
        scores = _training_metrics(result)
        scores["test_accuracy"] = trained.accuracy(data.test_images, data.test_labels)
        scratch.save("judge.pt", training.cpu_state_dict(result.model))
        scratch.save("losses.pt", torch.tensor(result.losses, dtype=torch.float32))
        return scores

    return cached_run(ctx, "partb/judge-training", {"recipe": recipe.to_dict()}, compute)
