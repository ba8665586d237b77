"""Part B's trained models read back from their training runs, in eval mode on the build's device.

The recipe comes from the training run's own parameters, not from the profile table, so a model
is always rebuilt with the shape it was trained with.
"""

from __future__ import annotations

import torch

from diffusion_lab.experiments.partb_training import (  # noqa: F401  (the loaders' vocabulary, re-exported)
    checkpoint_epochs,
    sampled_weights,
    trained_state,
    weight_kinds,
)
from diffusion_lab.mnist import training
from diffusion_lab.mnist.ddpm import DDPMSchedule
from diffusion_lab.mnist.judge import Judge
from diffusion_lab.mnist.recipes import DDPMRecipe, DenoiserRecipe, FlowMatchingRecipe, JudgeRecipe
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord


def _recipe(run: RunRecord, kind: type):
    """The recipe a training run was made with, rebuilt from its parameters."""
    fields = {name: value for name, value in run.params["recipe"].items() if name in kind.__dataclass_fields__}
    return kind(**{name: tuple(value) if isinstance(value, list) else value for name, value in fields.items()})


def checkpoint_label(run: RunRecord, epoch: int | float) -> str:
    return run.metrics["checkpoint_labels"][training.epoch_key(epoch)]


def load_denoiser(ctx: BuildContext, run: RunRecord, epoch: int | float) -> torch.nn.Module:
    model = training.make_denoiser(_recipe(run, DenoiserRecipe))
    model.load_state_dict(trained_state(run, epoch))
    return model.to(ctx.device).eval()


def load_ddpm(ctx: BuildContext, run: RunRecord, epoch: int | float | None = None,
              weights: str | None = None) -> torch.nn.Module:
    """The DDPM of a training run after `epoch` (default: the last), with its raw weights or their
    EMA (default: the ones the recipe samples), in eval mode on the build's device."""
    model = training.make_ddpm_unet(_recipe(run, DDPMRecipe), run.params["conditional"])
    model.load_state_dict(trained_state(run, epoch, weights))
    return model.to(ctx.device).eval()


def load_flow(ctx: BuildContext, run: RunRecord, epoch: int | float | None = None) -> torch.nn.Module:
    """The flow-matching UNet of a training run after `epoch` (default: the last), in eval mode on
    the build's device."""
    model = training.make_ddpm_unet(_recipe(run, FlowMatchingRecipe), run.params["conditional"])
    model.load_state_dict(trained_state(run, epoch))
    return model.to(ctx.device).eval()


def ddpm_schedule(run: RunRecord) -> DDPMSchedule:
    """The noise schedule a DDPM training run was trained on."""
    return training.schedule_for(_recipe(run, DDPMRecipe))


def final_alpha_bar(run: RunRecord) -> float:
    """ᾱ_T of the schedule a DDPM training run was trained on: how much of a digit x_T still holds."""
    return float(ddpm_schedule(run).zero_based_alphas_cumprod[-1])


def load_judge(ctx: BuildContext, run: RunRecord) -> Judge:
    return Judge.from_state_dict(_recipe(run, JudgeRecipe), run.load("judge.pt"), ctx.device)
