"""The course's "denoising pure noise": the one-step UNet of B1.2 fed z ~ N(0, I) alone.

The input carries nothing about the digit, so the L2-optimal output is the same image for every z:
the mean of the training digits. Training shows the collapse to that average digit, which is what
motivates iterative denoising and flow matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffusion_lab import seeding
from diffusion_lab.mnist.data import MnistSplits
from diffusion_lab.mnist.recipes import DenoiserRecipe
from diffusion_lab.mnist.training import TrainingResult, fit, make_denoiser, seeded, training_subset


def pure_noise_loss(model: torch.nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """|| D(z) - x ||^2 with z ~ N(0, I) of the shape of the digits x (N, 1, 28, 28) in [0, 1]."""
    z = seeding.randn(x.shape, generator, x.device)
    return F.mse_loss(model(z).float(), x)


def train_pure_noise_denoiser(
    recipe: DenoiserRecipe, data: MnistSplits, device: torch.device | str = "cpu", seed: int = 0, progress: bool = True
) -> TrainingResult:
    """The B1.2 UNet and recipe (its sigma unused) trained to map pure noise to digits."""
    run_name = "pure_noise_denoiser"
    images, labels = training_subset(data, recipe.train_subset, seed, run_name)
    model = seeded(lambda: make_denoiser(recipe), seed, f"{run_name}/init")
    return fit(
        model, images, labels, lambda net, x, _labels, generator: pure_noise_loss(net, x, generator),
        run_name=run_name, seed=seed, batch_size=recipe.batch_size, epochs=recipe.epochs,
        learning_rate=recipe.learning_rate, checkpoint_epochs=recipe.checkpoint_epochs,
        checkpoint_labels=recipe.checkpoint_labels, device=device, precision=recipe.precision,
        progress=progress, recipe=recipe.to_dict(),
    )
