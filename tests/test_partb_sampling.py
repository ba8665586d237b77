"""Algorithms B.3 / B.4 are Part A's loop (`sampling.sample`) over the MNIST noise model.

The oracle is Part B's own sampler as it stood before it became Part A's loop (e2836dc,
mnist/ddpm.py), written out below: the samples must be the same bits for the same seed.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from diffusion_lab import schedule as schedule_lib
from diffusion_lab import seeding
from diffusion_lab.experiments.partb_sampling import partb_noise_model, sample_digits
from diffusion_lab.mnist.ddpm import DDPMSchedule, q_sample
from diffusion_lab.mnist.training import seeded
from diffusion_lab.mnist.unet import ClassConditionalUNet, TimeConditionalUNet, fold_batchnorm, one_hot

T = 12


def _tiny_model(conditional: bool, seed: int = 0):
    factory = (lambda: ClassConditionalUNet(1, 10, 8)) if conditional else (lambda: TimeConditionalUNet(1, 8))
    model = seeded(factory, seed, "test-model")
    # Random BatchNorm statistics, so that folding them into the convolutions is exercised.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(seed))
            module.running_var.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(seed + 1))
    return model.eval()


def _sample(model, seed, **kwargs):
    noise_model = partb_noise_model(model, DDPMSchedule(T), precision="fp32")
    return sample_digits(noise_model, seeding.make_generator(seed, "sample"), **kwargs)


@torch.no_grad()
def _oracle(model, schedule, count, generator, labels=None, guidance_scale=5.0, batch_size=500):
    """e2836dc's `ddpm.sample` in fp32: per batch x_T, then t = T..1 with the conditional and
    unconditional estimates in one batch [c; 0] (at g = 1 the conditional alone), and the fixed_large
    step in float64 scalars."""
    model = fold_batchnorm(model)
    samples = []
    for begin in range(0, count, batch_size):
        n = min(batch_size, count - begin)
        x_t = seeding.randn((n, 1, 28, 28), generator)
        if labels is not None:
            c = one_hot(labels[begin : begin + n], 10)
            c_pair = torch.cat([c, torch.zeros_like(c)])
        for t in range(schedule.num_timesteps, 0, -1):
            t_net = torch.full((n,), t / schedule.num_timesteps)
            if labels is None:
                eps_hat = model(x_t, t_net).float()
            elif guidance_scale == 1.0:  # CFG at g = 1 is the conditional estimate: one pass
                eps_hat = model(x_t, t_net, c).float()
            else:
                eps_c, eps_u = model(torch.cat([x_t, x_t]), torch.cat([t_net, t_net]), c_pair).float().chunk(2)
                eps_hat = eps_u + guidance_scale * (eps_c - eps_u)
            z = seeding.randn((n, 1, 28, 28), generator) if t > 1 else None
            x_t = schedule_lib.step(x_t, eps_hat, t - 1, t - 2, schedule.zero_based_alphas_cumprod, noise=z,
                                    variance_type="fixed_large", scalar_dtype=torch.float64).prev_sample
        samples.append(x_t)
    return torch.cat(samples)


@pytest.mark.parametrize("guidance_scale", [0.0, 1.0, 5.0])
def test_guided_samples_are_the_bits_of_part_bs_own_sampler(guidance_scale):
    model = _tiny_model(True)
    labels = torch.tensor([0, 3, 7, 9, -1, 2, 2])
    ours = _sample(model, 0, labels=labels, guidance_scale=guidance_scale, batch_size=4).samples
    oracle = _oracle(model, DDPMSchedule(T), 7, seeding.make_generator(0, "sample"), labels, guidance_scale, 4)
    assert torch.equal(ours, oracle)


def test_unguided_samples_are_the_bits_of_part_bs_own_sampler():
    model = _tiny_model(False)
    ours = _sample(model, 3, num_samples=5, batch_size=3).samples
    assert torch.equal(ours, _oracle(model, DDPMSchedule(T), 5, seeding.make_generator(3, "sample"), batch_size=3))


@pytest.mark.parametrize("conditional", [False, True])
def test_sampling_repeats_for_a_seed_and_differs_for_another(conditional):
    model = _tiny_model(conditional)
    kwargs = {"labels": torch.tensor([0, 1, 2, 3, 4, 5])} if conditional else {"num_samples": 6}
    first = _sample(model, 0, **kwargs).samples
    assert torch.equal(first, _sample(model, 0, **kwargs).samples)
    assert not torch.allclose(first, _sample(model, 1, **kwargs).samples)
    assert first.shape == (6, 1, 28, 28) and torch.isfinite(first).all()


def test_frames_start_from_noise_and_end_at_the_samples():
    result = _sample(_tiny_model(False), 0, num_samples=6, frame_every=5)
    assert result.frame_steps == [12, 7, 2, 0]
    assert result.frames.shape == (4, 6, 1, 28, 28)
    assert torch.equal(result.frames[-1], result.samples)
    assert torch.equal(result.frames[0], seeding.randn((6, 1, 28, 28), seeding.make_generator(0, "sample")))


def test_batched_sampling_counts_network_evaluations_and_keeps_labels():
    labels = torch.tensor([1, 1, 2, 2, -1, 5])
    result = _sample(_tiny_model(True), 0, labels=labels, guidance_scale=5.0, batch_size=4)
    assert result.samples.shape == (6, 1, 28, 28)
    assert result.network_evaluations == 2 * 6 * T
    assert torch.equal(result.labels, labels)
    unguided = _sample(_tiny_model(False), 0, num_samples=6, batch_size=4)
    assert unguided.network_evaluations == 6 * T and unguided.guidance_scale is None


def test_the_noise_model_runs_every_step_with_the_fixed_large_variance():
    model = partb_noise_model(_tiny_model(False), DDPMSchedule(T), precision="fp32")
    assert model.strided_timesteps() == list(range(T - 1, -1, -1))
    assert model.variance_type == "fixed_large"
    with pytest.raises(ValueError, match="either labels or num_samples"):
        sample_digits(model, seeding.make_generator(0, "x"))


@pytest.mark.parametrize("t", [300, 151, 2, 1])
def test_reverse_step_matches_diffusers_fixed_large(t):
    """diffusers' 0-based timestep i is our t = i + 1; its 'fixed_large' variance is beta_t.

    diffusers keeps the schedule in float32, where 1 - abar_t near t = 1 (about 3e-4) carries a
    relative error of about 2e-4; we keep float64, hence the 1e-3 tolerance. A wrong
    coefficient or index is off by far more."""
    schedule = DDPMSchedule()
    oracle = DDPMScheduler(num_train_timesteps=300, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                           variance_type="fixed_large", clip_sample=False)
    source = torch.Generator().manual_seed(1)
    x_t, eps_hat = torch.randn(2, 1, 28, 28, generator=source), torch.randn(2, 1, 28, 28, generator=source)
    expected = oracle.step(eps_hat, t - 1, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    z = seeding.randn(x_t.shape, torch.Generator().manual_seed(7))
    ours = schedule_lib.step(x_t, eps_hat, t - 1, t - 2, schedule.zero_based_alphas_cumprod, noise=z,
                             variance_type="fixed_large", scalar_dtype=torch.float64).prev_sample
    torch.testing.assert_close(ours, expected, atol=1e-3, rtol=1e-3)


def test_last_step_returns_the_clean_estimate():
    schedule = DDPMSchedule()
    x_0 = torch.rand(2, 1, 28, 28)
    eps = torch.randn(2, 1, 28, 28)
    x_1 = q_sample(schedule, x_0, torch.tensor([1, 1]), eps)
    last = schedule_lib.step(x_1, eps, 0, -1, schedule.zero_based_alphas_cumprod, scalar_dtype=torch.float64)
    torch.testing.assert_close(last.prev_sample, x_0, atol=1e-5, rtol=0)
