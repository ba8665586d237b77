"""The MNIST backend: prompts, the timestep convention, and agreement with Part B's own sampler."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler
from torch import nn

from diffusion_lab import schedule
from diffusion_lab.backends.base import NoiseModel, UnknownPrompt
from diffusion_lab.backends.mnist import MnistBackend, parse_prompt
from diffusion_lab.mnist import ddpm
from diffusion_lab.seeding import make_generator


class StandInUNet(nn.Module):
    """forward(x, t, c) -> eps like ClassConditionalUNet, without its weight; records its inputs."""

    num_classes = 10

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.embed = nn.Linear(11, 1)
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, t, c):
        self.seen.append((t.detach().clone(), c.detach().clone()))
        shift = self.embed(torch.cat([t.reshape(-1, 1), c], dim=1))[:, :, None, None]
        return 0.5 * x + 0.3 * torch.tanh(self.conv(x) + shift)


def backend(num_timesteps=300, **kwargs) -> MnistBackend:
    abar = ddpm.DDPMSchedule(num_timesteps=num_timesteps).alphas_cumprod[1:]
    return MnistBackend(StandInUNet(), abar, "cpu", **kwargs)


@pytest.mark.parametrize("prompt", ["a handwritten 7", "7", "seven", "the digit 7", "  A Handwritten SEVEN "])
def test_prompts_for_seven(prompt):
    assert parse_prompt(prompt) == 7
    condition = backend().encode(prompt)
    assert condition.shape == (1, 10) and condition[0, 7] == 1 and condition.sum() == 1


def test_empty_prompt_is_unconditional():
    assert torch.equal(backend().encode(""), torch.zeros(1, 10))


def test_unknown_prompt_says_what_is_understood():
    with pytest.raises(UnknownPrompt) as error:
        backend().encode("a rocket ship")
    message = str(error.value)
    assert "'a rocket ship'" in message
    for understood in ("'7'", "'seven'", "'a handwritten 7'", "'the digit 7'", "''"):
        assert understood in message


def test_schedule_and_strided_timesteps():
    model = backend()
    assert isinstance(model, NoiseModel)
    reference = DDPMScheduler(num_train_timesteps=300, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    torch.testing.assert_close(model.alphas_cumprod, reference.alphas_cumprod.double(), rtol=1e-5, atol=1e-7)
    assert model.strided_timesteps() == list(range(297, -1, -9))
    assert "297, 288, ..., 0 (stride 9)" in model.description
    assert (model.variance_type, model.data_range, model.sample_shape) == ("fixed_small", (0.0, 1.0), (1, 28, 28))
    assert backend(num_timesteps=20).strided_timesteps() == list(range(19, -1, -1))


def test_refuses_the_schedule_with_the_clean_entry():
    with pytest.raises(ValueError, match=r"alphas_cumprod\[1:\]"):
        MnistBackend(StandInUNet(), ddpm.DDPMSchedule().alphas_cumprod, "cpu")


def test_predict_feeds_t_over_T_and_broadcasts_the_condition():
    model = backend()
    x = torch.randn(3, 1, 28, 28)
    model.predict(x, 0, model.encode("seven"))
    model.predict(x, 299, model.encode(""))
    (t_first, c_first), (t_last, c_last) = model.unet.seen
    assert torch.equal(t_first, torch.full((3,), 1 / 300)) and torch.equal(t_last, torch.ones(3))
    assert c_first.shape == (3, 10) and torch.equal(c_first[:, 7], torch.ones(3))
    assert torch.equal(c_last, torch.zeros(3, 10))


def test_timestep_convention_agrees_with_part_b():
    """Our 0-based k is Part B's t = k + 1: the same network input, and the step mean from k to
    k - 1 is the write-up's B2.3 update from t to t - 1 (the last one returning x0_hat)."""
    T = 20
    part_b = ddpm.DDPMSchedule(num_timesteps=T)
    model = backend(num_timesteps=T)
    generator = make_generator(0, "convention")
    condition = model.encode("3")
    for k in range(T):
        x = torch.randn(2, 1, 28, 28, generator=generator)
        eps = model.predict(x, k, condition).eps
        expected_eps = model.unet(x, part_b.net_time(torch.full((2,), k + 1)), condition.expand(2, -1))
        torch.testing.assert_close(eps, expected_eps, rtol=0, atol=0)
        ours = schedule.step(x, eps, k, k - 1, model.alphas_cumprod).prev_sample
        t = k + 1
        abar_t, abar_prev = part_b.alphas_cumprod[t], part_b.alphas_cumprod[t - 1]
        a_t, b_t = part_b.alphas[t], part_b.betas[t]
        x0_hat = (x - (1 - abar_t) ** 0.5 * eps) / abar_t**0.5
        theirs = abar_prev**0.5 * b_t / (1 - abar_t) * x0_hat + a_t**0.5 * (1 - abar_prev) / (1 - abar_t) * x
        torch.testing.assert_close(ours, theirs.float(), rtol=1e-5, atol=1e-5)


def test_a_time_conditioned_unet_takes_only_the_empty_prompt():
    from diffusion_lab.mnist.unet import TimeConditionalUNet

    abar = ddpm.DDPMSchedule(num_timesteps=20).alphas_cumprod[1:]
    model = MnistBackend(TimeConditionalUNet(1, 8).eval(), abar, "cpu")
    condition = model.encode("")
    assert condition.shape == (1, 0)
    with pytest.raises(UnknownPrompt, match="no class input"):
        model.encode("a handwritten 7")
    x = torch.randn(3, 1, 28, 28)
    expected = model.unet(x, torch.full((3,), 5 / 20))
    assert torch.equal(model.predict(x, 4, condition).eps, expected)
