"""Part B DDPM schedule and losses against diffusers, the recipes and the training loops (sampling:
test_partb_sampling.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from diffusers import DDPMScheduler

from diffusion_lab import seeding
from diffusion_lab.mnist import ddpm
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.mnist.precision import resolve_precision
from diffusion_lab.mnist.training import seeded, train_ddpm, train_denoiser
from diffusion_lab.mnist.unet import ClassConditionalUNet, TimeConditionalUNet
from diffusion_lab.profiles import PROFILES, get_profile

TINY = get_profile("tiny").partb


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


# --- schedule and forward process --------------------------------------------------------------


def test_schedule_matches_diffusers_linear_ddpm():
    schedule = ddpm.DDPMSchedule(300, 1e-4, 0.02)
    oracle = DDPMScheduler(num_train_timesteps=300, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    assert schedule.alphas_cumprod.shape == (301,)
    assert schedule.alphas_cumprod[0] == 1 and schedule.betas[0] == 0
    torch.testing.assert_close(schedule.betas[1:].float(), oracle.betas)
    torch.testing.assert_close(schedule.alphas_cumprod[1:].float(), oracle.alphas_cumprod)


def test_training_timesteps_cover_1_to_T():
    t = ddpm.DDPMSchedule(10).sample_timesteps(5000, torch.Generator().manual_seed(0))
    assert t.min() == 1 and t.max() == 10 and len(t.unique()) == 10


@pytest.mark.parametrize("t", [1, 50, 150, 300])
def test_q_sample_has_the_forward_process_mean_and_variance(t):
    schedule = ddpm.DDPMSchedule()
    draws = 40_000
    x_0 = torch.linspace(0, 1, 16).reshape(1, 1, 4, 4).expand(draws, 1, 4, 4)
    eps = seeding.randn(x_0.shape, torch.Generator().manual_seed(t))
    x_t = ddpm.q_sample(schedule, x_0, torch.full((draws,), t), eps)
    alpha_prod_t = schedule.alphas_cumprod[t].item()
    torch.testing.assert_close(x_t.mean(0), alpha_prod_t**0.5 * x_0[0], atol=0.02, rtol=0)
    torch.testing.assert_close(x_t.var(0), torch.full((1, 4, 4), 1 - alpha_prod_t), atol=0.03, rtol=0.03)


# --- losses ----------------------------------------------------------------------------------------


def test_class_dropout_zeroes_about_p_uncond_of_the_rows():
    seen = []

    class Spy(torch.nn.Module):
        num_classes = 10

        def forward(self, x, t, c):
            seen.append(c)
            return torch.zeros_like(x, requires_grad=True)

    generator = torch.Generator().manual_seed(0)
    x_0, labels = torch.zeros(4000, 1, 2, 2), torch.randint(0, 10, (4000,), generator=generator)
    ddpm.class_conditioned_loss(Spy(), ddpm.DDPMSchedule(), x_0, labels, generator, p_uncond=0.1)
    c = seen[0]
    dropped = c.sum(dim=1) == 0
    assert 0.08 < dropped.float().mean() < 0.12
    assert torch.equal(c[~dropped].argmax(dim=1), labels[~dropped])


# --- recipes -------------------------------------------------------------------------------------


def test_full_recipe_is_the_course_recipe():
    full = get_profile("full").partb
    d = full.denoiser
    assert (d.num_hiddens, d.batch_size, d.epochs, d.learning_rate, d.sigma, d.checkpoint_epochs) == (
        128, 256, 5, 1e-4, 0.5, (1, 5))
    for recipe in (full.time_ddpm, full.class_ddpm):
        assert (recipe.num_hiddens, recipe.batch_size, recipe.epochs, recipe.learning_rate) == (64, 128, 20, 1e-3)
        assert (recipe.num_timesteps, recipe.beta1, recipe.beta2) == (300, 1e-4, 0.02)
        assert recipe.checkpoint_epochs == (5, 20)
        assert recipe.lr_gamma ** recipe.epochs == pytest.approx(0.1)
        assert recipe.train_subset is None
    assert full.class_ddpm.p_uncond == 0.1


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_recipes_serialize_and_checkpoints_fall_inside_training(profile):
    recipes = get_profile(profile).partb
    json.dumps(recipes.to_dict())
    for recipe in (recipes.denoiser, recipes.time_ddpm, recipes.class_ddpm):
        assert max(recipe.checkpoint_epochs) == recipe.epochs
        assert len(recipe.checkpoint_labels) == len(recipe.checkpoint_epochs)


def test_unknown_profile_and_precision_are_refused():
    with pytest.raises(ValueError, match="quick"):
        get_profile("medium")
    with pytest.raises(ValueError):
        resolve_precision("fp16", "cpu")


# --- training loops ------------------------------------------------------------------------------


def _early_and_late(losses, k=4):
    return sum(losses[:k]) / k, sum(losses[-k:]) / k


def test_denoiser_training_lowers_the_loss_and_keeps_checkpoints(mnist):
    result = train_denoiser(TINY.denoiser, mnist, "cpu", seed=0, progress=False)
    early, late = _early_and_late(result.losses)
    assert late < 0.6 * early
    assert sorted(result.checkpoints) == [1, 2]
    assert result.checkpoint_labels[1] == "epoch 1 of 2"
    assert len(result.losses) == TINY.denoiser.epochs * result.steps_per_epoch
    assert result.precision == "fp32" and result.images_per_s > 0
    assert not torch.equal(result.checkpoints[1]["head.weight"], result.checkpoints[2]["head.weight"])


def test_ddpm_training_is_deterministic_for_a_seed(mnist):
    short = dataclasses.replace(TINY.class_ddpm, train_subset=128, epochs=2, checkpoint_epochs=(2,),
                                checkpoint_labels=("end",))
    first = train_ddpm(short, mnist, "cpu", seed=3, conditional=True, progress=False)
    again = train_ddpm(short, mnist, "cpu", seed=3, conditional=True, progress=False)
    other = train_ddpm(short, mnist, "cpu", seed=4, conditional=True, progress=False)
    assert first.losses == again.losses
    for key, value in first.checkpoints[2].items():
        assert torch.equal(value, again.checkpoints[2][key]), key
    assert first.losses != other.losses


def test_class_ddpm_training_lowers_the_loss(mnist):
    result = train_ddpm(TINY.class_ddpm, mnist, "cpu", seed=0, conditional=True, progress=False)
    early, late = _early_and_late(result.losses)
    assert late < 0.8 * early
    assert isinstance(result.model, ClassConditionalUNet)


def test_time_ddpm_training_lowers_the_loss(mnist):
    result = train_ddpm(TINY.time_ddpm, mnist, "cpu", seed=0, conditional=False, progress=False)
    early, late = _early_and_late(result.losses)
    assert late < 0.8 * early
    assert isinstance(result.model, TimeConditionalUNet) and not result.model.training
