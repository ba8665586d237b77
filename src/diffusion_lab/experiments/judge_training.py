"""The judge: the project's MNIST classifier that scores generated digits (Part B and Part A).

A training run of its own module, so that its key covers the classifier's code and not the
DDPMs', and theirs not its.
"""

from __future__ import annotations

import torch

from diffusion_lab.mnist import judge as judge_lib, training
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run


def judge_training(ctx: BuildContext, progress: bool = True) -> RunRecord:
    """The project's MNIST classifier that scores generated digits, and its test accuracy."""
    recipe = ctx.recipes.partb.judge

    def compute(scratch: Scratch):
        data = load_mnist()
        result = judge_lib.train_judge(recipe, data, ctx.device, scratch.seed, progress)
        trained = judge_lib.Judge(result.model, ctx.device)
        scores = result.summary()
        scores["test_accuracy"] = trained.accuracy(data.test_images, data.test_labels)
        scratch.save("judge.pt", training.cpu_state_dict(result.model))
        scratch.save("losses.pt", torch.tensor(result.losses, dtype=torch.float32))
        return scores

    return cached_run(ctx, "partb/judge-training", {"recipe": recipe.to_dict()}, compute)
