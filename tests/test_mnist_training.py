"""Part B DDPM math against diffusers, sampling invariants, recipes and the training loops."""

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
from diffusion_lab.mnist.recipes import RECIPES, get_recipes
from diffusion_lab.mnist.training import seeded, train_ddpm, train_denoiser
from diffusion_lab.mnist.unet import ClassConditionalUNet, TimeConditionalUNet, one_hot

TINY = get_recipes("tiny")


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


# --- the reverse step ----------------------------------------------------------------------------


@pytest.mark.parametrize("t", [300, 151, 2, 1])
def test_reverse_step_matches_diffusers_fixed_large(t):
    """diffusers' 0-based timestep i is our t = i + 1; its 'fixed_large' variance is beta_t.

    diffusers keeps the schedule in float32, where 1 - abar_t near t = 1 (about 3e-4) carries a
    relative error of about 2e-4; we keep float64, hence the 1e-3 tolerance. A wrong
    coefficient or index is off by far more."""
    schedule = ddpm.DDPMSchedule()
    oracle = DDPMScheduler(num_train_timesteps=300, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                           variance_type="fixed_large", clip_sample=False)
    source = torch.Generator().manual_seed(1)
    x_t, eps_hat = torch.randn(2, 1, 28, 28, generator=source), torch.randn(2, 1, 28, 28, generator=source)
    expected = oracle.step(eps_hat, t - 1, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    z = seeding.randn(x_t.shape, torch.Generator().manual_seed(7)) if t > 1 else None
    torch.testing.assert_close(ddpm.reverse_step(schedule, x_t, eps_hat, t, z), expected, atol=1e-3, rtol=1e-3)


def test_last_step_returns_the_clean_estimate():
    schedule = ddpm.DDPMSchedule()
    x_0 = torch.rand(2, 1, 28, 28)
    eps = torch.randn(2, 1, 28, 28)
    x_1 = ddpm.q_sample(schedule, x_0, torch.tensor([1, 1]), eps)
    torch.testing.assert_close(ddpm.reverse_step(schedule, x_1, eps, 1, None), x_0, atol=1e-5, rtol=0)


# --- sampling ------------------------------------------------------------------------------------


def _tiny_model(conditional: bool, seed: int = 0):
    factory = (lambda: ClassConditionalUNet(1, 10, 8)) if conditional else (lambda: TimeConditionalUNet(1, 8))
    return seeded(factory, seed, "test-model").eval()


def _sample(model, seed, **kwargs):
    kwargs.setdefault("precision", "fp32")
    return ddpm.sample(model, ddpm.DDPMSchedule(12), 6, seeding.make_generator(seed, "sample"), **kwargs)


@pytest.mark.parametrize("conditional", [False, True])
def test_sampling_repeats_for_a_seed_and_differs_for_another(conditional):
    model = _tiny_model(conditional)
    labels = torch.tensor([0, 1, 2, 3, 4, 5]) if conditional else None
    first = _sample(model, 0, labels=labels).samples
    assert torch.equal(first, _sample(model, 0, labels=labels).samples)
    assert not torch.allclose(first, _sample(model, 1, labels=labels).samples)
    assert first.shape == (6, 1, 28, 28) and torch.isfinite(first).all()


def _conditional_only_loop(model, schedule, labels, generator):
    """Algorithm B.4 written out with the conditional estimate alone (no guidance)."""
    x_t = seeding.randn((labels.shape[0], 1, 28, 28), generator)
    c = one_hot(labels)
    for t in range(schedule.num_timesteps, 0, -1):
        eps_c = model(x_t, torch.full((labels.shape[0],), t / schedule.num_timesteps), c)
        z = seeding.randn(x_t.shape, generator) if t > 1 else None
        x_t = ddpm.reverse_step(schedule, x_t, eps_c, t, z)
    return x_t


def test_guidance_scale_one_is_plain_conditional_sampling():
    model, schedule = _tiny_model(True), ddpm.DDPMSchedule(12)
    labels = torch.tensor([0, 3, 7, 9])
    guided = ddpm.sample(model, schedule, 4, seeding.make_generator(0, "s"), labels=labels,
                         guidance_scale=1.0, precision="fp32").samples
    plain = _conditional_only_loop(model, schedule, labels, seeding.make_generator(0, "s"))
    torch.testing.assert_close(guided, plain, atol=1e-4, rtol=1e-4)
    other = ddpm.sample(model, schedule, 4, seeding.make_generator(0, "s"), labels=labels,
                        guidance_scale=5.0, precision="fp32").samples
    assert (other - plain).abs().max() > 1e-5  # an untrained net barely tells classes apart


def test_guided_eps_is_uncond_plus_g_times_difference():
    eps_u, eps_c = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.0])
    assert torch.equal(ddpm.guided_eps(eps_u, eps_c, 1.0), eps_c)
    assert torch.equal(ddpm.guided_eps(eps_u, eps_c, 0.0), eps_u)
    assert torch.equal(ddpm.guided_eps(eps_u, eps_c, 5.0), torch.tensor([11.0, 8.0]))


def test_frames_start_from_noise_and_end_at_the_samples():
    result = _sample(_tiny_model(False), 0, frame_every=5)
    assert result.frame_timesteps == [12, 7, 2, 0]
    assert result.frames.shape == (4, 6, 1, 28, 28)
    torch.testing.assert_close(result.frames[-1], result.samples)
    torch.testing.assert_close(result.frames[0], seeding.randn((6, 1, 28, 28), seeding.make_generator(0, "sample")))


def test_batched_sampling_counts_network_evaluations_and_keeps_labels():
    labels = torch.tensor([1, 1, 2, 2, -1, 5])
    result = _sample(_tiny_model(True), 0, labels=labels, batch_size=4)
    assert result.samples.shape == (6, 1, 28, 28)
    assert result.network_evaluations == 2 * 6 * 12
    assert torch.equal(result.labels, labels)


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
    full = get_recipes("full")
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


@pytest.mark.parametrize("profile", sorted(RECIPES))
def test_recipes_serialize_and_checkpoints_fall_inside_training(profile):
    recipes = get_recipes(profile)
    json.dumps(recipes.to_dict())
    for recipe in (recipes.denoiser, recipes.time_ddpm, recipes.class_ddpm):
        assert max(recipe.checkpoint_epochs) == recipe.epochs
        assert len(recipe.checkpoint_labels) == len(recipe.checkpoint_epochs)


def test_unknown_profile_and_precision_are_refused():
    with pytest.raises(ValueError, match="quick"):
        get_recipes("medium")
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
