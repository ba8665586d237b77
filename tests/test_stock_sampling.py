"""Section 0's stock loop (diffusers' DDPMScheduler over a NoiseModel) and the helpers around it."""

import pytest
import torch
from test_schedule_sampling import TinyNoiseModel

from diffusion_lab.experiments.parta_plan import MNIST_PLAN
from diffusion_lab.experiments.parta_stock import stock_prompts, stock_step_counts
from diffusion_lab.hashing import tensor_sha256
from diffusion_lab.sampling import sample
from diffusion_lab.seeding import make_generator
from diffusion_lab.stock_sampling import sample_with_scheduler, stock_scheduler, training_betas


def linear_abar(num_timesteps):
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, num_timesteps, dtype=torch.float64), dim=0)


def test_training_betas_rebuild_the_schedule():
    model = TinyNoiseModel()
    rebuilt = torch.cumprod(1 - training_betas(model.alphas_cumprod), dim=0)
    torch.testing.assert_close(rebuilt, model.alphas_cumprod, rtol=0, atol=1e-12)
    scheduler = stock_scheduler(model, 20)
    torch.testing.assert_close(scheduler.alphas_cumprod.double(), model.alphas_cumprod, rtol=0, atol=1e-6)
    assert scheduler.timesteps.tolist() == list(range(950, -1, -50))


@pytest.mark.parametrize("variance_type", ["learned_range", "fixed_small"])
def test_the_stock_loop_equals_ours_over_the_same_timesteps(variance_type):
    """diffusers' spacing, update, variance and draws against schedule.step on 950, 900, ..., 0."""
    model = TinyNoiseModel(variance_type=variance_type)
    condition = torch.cat([model.encode("a campfire"), model.encode("an old man")])
    stock = sample_with_scheduler(model, 2, condition, make_generator(0, "s"), num_inference_steps=20, guidance=7.0)
    ours = sample(model, 2, condition, make_generator(0, "s"), timesteps=list(range(950, -1, -50)), guidance=7.0)
    assert stock.abs().max() > 0.1  # a real image, not a collapsed one
    torch.testing.assert_close(stock, ours, rtol=0, atol=1e-4)
    other_seed = sample_with_scheduler(model, 2, condition, make_generator(1, "s"), num_inference_steps=20)
    assert not torch.allclose(stock, other_seed)


def test_the_stock_loop_refuses_step_counts_outside_the_schedule():
    model = TinyNoiseModel(alphas_cumprod=linear_abar(20))
    for bad in (0, 21):
        with pytest.raises(ValueError, match="1..20"):
            sample_with_scheduler(model, 1, model.encode(""), make_generator(0, "s"), num_inference_steps=bad)


def test_stock_step_counts_are_capped_at_the_models_T():
    assert stock_step_counts(MNIST_PLAN, 300) == [20, 300]
    assert stock_step_counts(MNIST_PLAN, 20) == [20]  # the tiny profile's T
    prompts = stock_prompts(MNIST_PLAN)
    assert len(prompts) == len(MNIST_PLAN.stock_prompts) * MNIST_PLAN.stock_images_per_prompt
    per_prompt = MNIST_PLAN.stock_images_per_prompt
    assert prompts[:per_prompt] == [MNIST_PLAN.stock_prompts[0]] * per_prompt


def test_tensor_sha256_names_values_shape_and_dtype():
    images = torch.rand(2, 3, 4, 4, generator=make_generator(0, "x"))
    assert tensor_sha256(images) == tensor_sha256(images.clone())
    changed = images.clone()
    changed[1, 2, 3, 3] += 1e-3
    assert tensor_sha256(changed) != tensor_sha256(images)
    assert tensor_sha256(images.reshape(2, 3, 16)) != tensor_sha256(images)
    assert tensor_sha256(images.double()) != tensor_sha256(images)
