"""The schedule and the sampling loop against diffusers' DDPMScheduler, and their invariants.

`TinyNoiseModel` here is the deterministic stand-in NoiseModel the algorithm tests share
(test_editing_illusions.py imports it).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler
from torch import nn

from diffusion_lab import schedule
from diffusion_lab.backends.base import ModelOutput, NoiseModel, UnknownPrompt
from diffusion_lab.forward_process import add_noise
from diffusion_lab.matched_start import MatchedStart
from diffusion_lab.mnist.ddpm import DDPMSchedule
from diffusion_lab.sampling import (
    FrameRecorder, LangevinCorrector, guided_estimate, iterative_denoise, one_step_denoise, sample,
)
from diffusion_lab.schedule import X0Clip
from diffusion_lab.seeding import make_generator

IF_TIMESTEPS = schedule.strided_timesteps(990, 30, 1000)
IF_ABAR = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").alphas_cumprod.double()
MNIST_TIMESTEPS = schedule.strided_timesteps(297, 9, 300)


class TinyNoiseModel:
    """A random two-layer conv net; the prompt scales its hidden channels (FiLM), so different
    prompts give different, spatially structured estimates, and nothing is flip-symmetric."""

    name = "tiny"
    description = "random-weight stand-in for tests"
    data_range = (-1.0, 1.0)
    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, variance_type="learned_range", alphas_cumprod=None, channels=3, size=8, seed=0):
        self.variance_type = variance_type
        self.alphas_cumprod = IF_ABAR if alphas_cumprod is None else alphas_cumprod
        self.sample_shape = (channels, size, size)
        with torch.random.fork_rng():  # nn init draws from the global RNG; keep it untouched
            torch.manual_seed(seed)
            self.conv_in = nn.Conv2d(channels + 1, 8, 3, padding=1)
            self.conv_out = nn.Conv2d(8, 2 * channels, 3, padding=1)
        generator = make_generator(seed, "tiny-prompts")
        self.prompts = {"": torch.zeros(1, 8)}
        for prompt in ("a campfire", "an old man", "a snowy village"):
            self.prompts[prompt] = torch.randn(1, 8, generator=generator)

    def strided_timesteps(self):
        return list(IF_TIMESTEPS)

    def encode(self, prompt):
        if prompt not in self.prompts:
            raise UnknownPrompt(f"unknown prompt {prompt!r}; known: {sorted(self.prompts)}")
        return self.prompts[prompt]

    @torch.no_grad()
    def predict(self, x_t, t, condition):
        # The best estimate for data ~ N(0, 0.5^2), plus a random prompt-dependent net: samples
        # stay bounded, as a trained model's do, so tolerances mean what they say.
        abar = float(self.alphas_cumprod[t])
        eps_prior = (1 - abar) ** 0.5 * x_t / (0.25 * abar + 1 - abar)
        time = torch.full_like(x_t[:, :1], t / len(self.alphas_cumprod))
        hidden = torch.tanh(self.conv_in(torch.cat([x_t, time], dim=1)))
        hidden = hidden * (1 + condition[:, :, None, None])
        eps, variance = torch.tanh(self.conv_out(hidden)).chunk(2, dim=1)
        return ModelOutput(
            eps=eps_prior + 0.3 * eps, variance=variance if self.variance_type == "learned_range" else None
        )


class OracleModel(TinyNoiseModel):
    """Predicts a fixed noise tensor whatever it is asked."""

    def __init__(self, eps):
        super().__init__(variance_type="fixed_small")
        self.eps = eps

    def predict(self, x_t, t, condition):
        return ModelOutput(eps=self.eps)


def scheduler(**config) -> DDPMScheduler:
    defaults = dict(clip_sample=False)
    return DDPMScheduler(**{**defaults, **config})


def if_like_scheduler(**config) -> DDPMScheduler:
    return scheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", variance_type="learned_range", **config
    )


def mnist_like_scheduler() -> DDPMScheduler:
    return scheduler(num_train_timesteps=300, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)


def part_b_scheduler() -> DDPMScheduler:
    """Part B's own sampler: its betas, every one of the T timesteps, sigma_t^2 = b_t."""
    betas = DDPMSchedule().betas[1:]
    return scheduler(num_train_timesteps=len(betas), trained_betas=betas.tolist(), variance_type="fixed_large")


# --- schedules -----------------------------------------------------------------------------------


def test_strided_timesteps():
    assert IF_TIMESTEPS[:3] == [990, 960, 930] and IF_TIMESTEPS[-2:] == [30, 0] and len(IF_TIMESTEPS) == 34
    assert MNIST_TIMESTEPS[:2] == [297, 288] and MNIST_TIMESTEPS[-1] == 0 and len(MNIST_TIMESTEPS) == 34
    assert schedule.strided_timesteps(999, 100, 1000)[-2:] == [99, 0]
    with pytest.raises(ValueError):
        schedule.strided_timesteps(1000, 30, 1000)


def test_forward_matches_diffusers_add_noise():
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    sched = if_like_scheduler()
    abar = sched.alphas_cumprod.double()
    for t in (250, 500, 750):
        x_t = schedule.forward(x0, t, abar, make_generator(0, "fwd"))
        eps = torch.randn(x0.shape, generator=make_generator(0, "fwd"))
        torch.testing.assert_close(x_t, sched.add_noise(x0, eps, torch.tensor([t])), rtol=1e-5, atol=1e-6)
    assert torch.equal(schedule.forward(x0, -1, abar, make_generator(0, "fwd")), x0)


@pytest.mark.parametrize("t", [250, 500, 750, 990])
def test_one_step_denoising_with_true_noise_recovers_x0(t):
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    eps = torch.randn(x0.shape, generator=make_generator(1, "eps"))
    abar = IF_ABAR
    x_t = schedule.add_noise(x0, eps, t, abar)
    torch.testing.assert_close(schedule.predict_x0(x_t, eps, t, abar), x0, rtol=1e-4, atol=1e-4)
    oracle = OracleModel(eps)
    torch.testing.assert_close(one_step_denoise(oracle, x_t, t, oracle.encode("")), x0, rtol=1e-4, atol=1e-4)


# --- the strided step against DDPMScheduler.step -------------------------------------------------


def _compare_every_step(sched, timesteps, with_variance, x0_clip=None):
    sched.set_timesteps(timesteps=timesteps)
    abar = sched.alphas_cumprod.double()
    g = make_generator(2, "inputs")
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x_t = torch.randn(2, 3, 8, 8, generator=g)
        eps = torch.randn(2, 3, 8, 8, generator=g)
        v = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1 if with_variance else None
        model_output = torch.cat([eps, v], dim=1) if with_variance else eps
        expected = sched.step(model_output, t, x_t, generator=make_generator(3, f"z{t}"))
        noise = torch.randn(x_t.shape, generator=make_generator(3, f"z{t}"))
        ours = schedule.step(
            x_t, eps, t, t_prev, abar, noise=noise, variance_type=sched.config.variance_type,
            predicted_variance=v, x0_clip=x0_clip,
        )
        # bit-equal on the CPU today; the tolerance only leaves room for other kernels
        torch.testing.assert_close(ours.x0_hat, expected.pred_original_sample, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(ours.prev_sample, expected.prev_sample, rtol=1e-6, atol=1e-6)
        coeffs = schedule.step_coefficients(t, t_prev, abar)
        expected_variance = sched._get_variance(t, predicted_variance=v)
        ours_variance = schedule.step_log_variance(coeffs, sched.config.variance_type, v)
        if not with_variance:  # fixed types: diffusers returns the variance itself, not its log
            ours_variance = schedule.fixed_variance(coeffs, sched.config.variance_type)
        torch.testing.assert_close(ours_variance.float(), expected_variance.float(), rtol=1e-6, atol=0)


def test_step_equals_diffusers_learned_range_cosine():
    _compare_every_step(if_like_scheduler(), IF_TIMESTEPS, with_variance=True)


def test_step_equals_diffusers_fixed_small_linear():
    _compare_every_step(mnist_like_scheduler(), MNIST_TIMESTEPS, with_variance=False)


def test_step_equals_diffusers_fixed_large_over_every_timestep():
    sched = part_b_scheduler()
    _compare_every_step(sched, list(range(sched.config.num_train_timesteps - 1, -1, -1)), with_variance=False)


def test_step_equals_diffusers_with_thresholding_and_clipping():
    threshold = dict(thresholding=True, dynamic_thresholding_ratio=0.95, sample_max_value=1.5)
    sched = if_like_scheduler(**threshold)
    clip = X0Clip.from_scheduler_config(sched.config)
    assert clip == X0Clip(clip_range=None, threshold_ratio=0.95, threshold_max=1.5)
    _compare_every_step(sched, IF_TIMESTEPS, with_variance=True, x0_clip=clip)
    sched = if_like_scheduler(clip_sample=True, clip_sample_range=1.0)
    _compare_every_step(sched, IF_TIMESTEPS, with_variance=True, x0_clip=X0Clip.from_scheduler_config(sched.config))


def test_last_step_returns_x0_hat_without_noise():
    abar = IF_ABAR
    x_t, eps = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    out = schedule.step(x_t, eps, 0, -1, abar, noise=torch.randn(2, 3, 8, 8), variance_type="fixed_small")
    assert torch.equal(out.prev_sample, out.x0_hat)
    torch.testing.assert_close(out.x0_hat, schedule.predict_x0(x_t, eps, 0, abar))


def test_strided_step_uses_strided_coefficients():
    abar = IF_ABAR
    coeffs = schedule.step_coefficients(690, 660, abar)
    assert coeffs.alpha_t == pytest.approx(float(abar[690] / abar[660]))
    assert coeffs.alpha_t < float(abar[690] / abar[689])  # a 30-step stride, not a single step


# --- the loop ------------------------------------------------------------------------------------


def test_sample_equals_a_diffusers_ddpm_loop_with_cfg():
    """Our loop and a hand-written IFPipeline-style loop (one batched randn for x_T, then
    DDPMScheduler.step drawing from the same generator) agree."""
    model = TinyNoiseModel()
    cond, uncond, g = model.encode("a campfire"), model.encode(""), 7.0
    ours = sample(model, 2, cond, make_generator(4, "s"), guidance=g, uncond=uncond)

    sched = if_like_scheduler()
    sched.set_timesteps(timesteps=IF_TIMESTEPS)
    generator = make_generator(4, "s")
    x = torch.randn((2, *model.sample_shape), generator=generator)
    for t in sched.timesteps:
        out_c, out_u = model.predict(x, int(t), cond), model.predict(x, int(t), uncond)
        eps = out_u.eps + g * (out_c.eps - out_u.eps)
        x = sched.step(torch.cat([eps, out_c.variance], dim=1), t, x, generator=generator).prev_sample
    torch.testing.assert_close(ours, x, rtol=1e-6, atol=1e-6)


def test_cfg_with_scale_one_is_the_conditional_estimate():
    model = TinyNoiseModel()
    x = torch.randn(2, *model.sample_shape, generator=make_generator(5, "x"))
    cond = model.encode("an old man")
    plain = model.predict(x, 500, cond)
    calls = []
    counting = SimpleNamespace(predict=lambda *args: calls.append(args) or model.predict(*args))
    guided = guided_estimate(counting, cond, model.encode(""), guidance=1.0)(x, 500)
    torch.testing.assert_close(guided.eps, plain.eps, rtol=0, atol=1e-6)
    assert torch.equal(guided.variance, plain.variance)
    assert len(calls) == 1 and calls[0][0].shape[0] == 2, "g = 1 needs no unconditional pass"
    # and at g = 7 it is eps_u + g (eps_c - eps_u), not (1 + g) eps_c - g eps_u
    uncond = model.predict(x, 500, model.encode(""))
    torch.testing.assert_close(
        guided_estimate(model, cond, model.encode(""), 7.0)(x, 500).eps, uncond.eps + 7 * (plain.eps - uncond.eps)
    )


def test_frames_every_fifth_step_from_i_start_10():
    model = TinyNoiseModel()
    recorder = FrameRecorder()
    x = torch.randn(1, *model.sample_shape, generator=make_generator(6, "x"))
    iterative_denoise(
        model, x, IF_TIMESTEPS, 10, model.encode(""), make_generator(6, "loop"), callback=recorder, callback_every=5
    )
    assert recorder.timesteps == [690, 540, 390, 240, 90]
    assert torch.equal(recorder.frames[0][2], x)


def test_loop_is_repeatable_and_depends_on_the_seed():
    model = TinyNoiseModel()
    cond = model.encode("a snowy village")
    first = sample(model, 2, cond, make_generator(7, "s"), guidance=3.0)
    again = sample(model, 2, cond, make_generator(7, "s"), guidance=3.0)
    other = sample(model, 2, cond, make_generator(8, "s"), guidance=3.0)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other, atol=1e-3)


def test_loop_refuses_missing_generator_and_variance():
    model = TinyNoiseModel()
    x = torch.randn(1, *model.sample_shape)
    with pytest.raises(ValueError, match="Generator"):
        iterative_denoise(model, x, IF_TIMESTEPS, 0, model.encode(""), None)
    no_variance = OracleModel(torch.zeros_like(x))
    no_variance.variance_type = "learned_range"
    with pytest.raises(ValueError, match="predicted variance"):
        iterative_denoise(no_variance, x, IF_TIMESTEPS, 0, no_variance.encode(""), make_generator(0, "x"))


def _gaussian_eps(x_t, t, data_var=0.25):
    """The exact noise estimate when the data are N(0, data_var): x_t ~ N(0, v), v = data_var abar + 1 - abar."""
    abar = float(IF_ABAR[t])
    return (1 - abar) ** 0.5 * x_t / (data_var * abar + 1 - abar)


@pytest.mark.parametrize("start_scale", [1.0, 2.0, 0.5])
def test_langevin_steps_hold_the_marginal_and_pull_a_wrong_noise_level_back_to_it(start_scale):
    t = 400
    abar = float(IF_ABAR[t])
    marginal_std = (0.25 * abar + 1 - abar) ** 0.5
    generator = make_generator(0, "langevin")
    x = start_scale * marginal_std * torch.randn(512, 3, 8, 8, generator=generator)
    for _ in range(40):
        noise = torch.randn(x.shape, generator=generator)
        x = schedule.langevin_step(x, _gaussian_eps(x, t), t, IF_ABAR, 0.3, noise)
    # the step's discretisation widens the stationary law by about r^2 / 2 = 4.5% in variance
    assert x.std().item() / marginal_std == pytest.approx(1.0, abs=0.06)
    assert abs(x.mean().item()) < 0.02


def test_langevin_step_size_makes_the_noise_snr_times_the_drift():
    """delta = 2 a_t (r |z| / |s|)^2, so |sqrt(2 delta) z| / |delta s| = 1 / (r sqrt(a_t)) for each image."""
    t, snr = 300, 0.16
    x = torch.randn(4, 3, 8, 8, generator=make_generator(1, "x"))
    eps = torch.randn(4, 3, 8, 8, generator=make_generator(2, "eps"))
    noise = torch.randn(4, 3, 8, 8, generator=make_generator(3, "z"))
    alpha = float(IF_ABAR[t] / IF_ABAR[t - 1])
    moved = schedule.langevin_step(x, eps, t, IF_ABAR, snr, noise) - x
    drift_direction = -eps / float(1 - IF_ABAR[t]) ** 0.5
    for image in range(4):
        # split the move into its drift (along the score) and noise (along z) parts by least squares
        basis = torch.stack([drift_direction[image].flatten(), noise[image].flatten()], dim=1).double()
        delta, root = torch.linalg.lstsq(basis, moved[image].flatten().double()[:, None]).solution.flatten().tolist()
        assert root == pytest.approx((2 * delta) ** 0.5, rel=1e-4)
        ratio = root * noise[image].norm() / (delta * drift_direction[image].norm())
        assert ratio.item() == pytest.approx(1 / (snr * alpha**0.5), rel=1e-4)
    with pytest.raises(ValueError, match="> 0"):
        schedule.langevin_step(x, eps, t, IF_ABAR, 0.0, noise)


def test_corrector_evaluates_once_more_at_every_step_but_the_last_and_changes_the_samples():
    model = TinyNoiseModel(variance_type="fixed_small")
    calls = []
    predict = model.predict
    model.predict = lambda x_t, t, condition: calls.append(int(t)) or predict(x_t, t, condition)
    cond = model.encode("a campfire")
    timesteps = list(IF_TIMESTEPS)
    plain = sample(model, 2, cond, make_generator(0, "pc"))
    calls.clear()
    corrected = sample(model, 2, cond, make_generator(0, "pc"), corrector=LangevinCorrector(0.16, steps=2))
    again = sample(model, 2, cond, make_generator(0, "pc"), corrector=LangevinCorrector(0.16, steps=2))
    expected = [timesteps[0]] + [t for t in timesteps[1:] for _ in range(3)]
    assert calls[: len(expected)] == expected
    assert LangevinCorrector(0.16, steps=2).evaluations(len(timesteps)) == 2 * (len(timesteps) - 1)
    assert torch.equal(corrected, again) and not torch.allclose(corrected, plain, atol=1e-3)
    for bad in ({"snr": 0.0}, {"snr": -1.0}, {"snr": 0.16, "steps": 0}):
        with pytest.raises(ValueError):
            LangevinCorrector(**bad)


def test_stand_in_is_a_noise_model():
    assert isinstance(TinyNoiseModel(), NoiseModel)


# --- the matched start ---------------------------------------------------------------------------


def _digits_like(n=400, size=4, seed=0) -> torch.Tensor:
    """(n, 1, size, size) images in [0, 1] with a mean image and correlated pixels, like digits."""
    generator = make_generator(seed, "matched-start-images")
    strokes = torch.rand(n, 1, 1, size, generator=generator) * torch.rand(n, 1, size, 1, generator=generator)
    return (strokes + 0.2 * torch.rand(n, 1, size, size, generator=generator)).clamp(0, 1)


@pytest.mark.parametrize("abar", [0.048, 0.5, 0.999])
def test_the_matched_start_has_the_mean_and_covariance_of_q_x_t(abar):
    images = _digits_like()
    start = MatchedStart(images)
    flat = images.reshape(len(images), -1).double()
    mean, cov = flat.mean(0), torch.cov(flat.T)
    eye = torch.eye(flat.shape[1], dtype=torch.float64)
    scale = start.scale(abar)
    assert torch.equal(scale, scale.tril())
    torch.testing.assert_close(scale @ scale.T, abar * cov + (1 - abar) * eye)
    # x = sqrt(abar) mu + L eps: an affine map of eps, so its moments are exactly those above
    eps = torch.randn(3, 1, 4, 4, generator=make_generator(0, "eps"), dtype=torch.float64)
    torch.testing.assert_close(start(torch.zeros_like(eps), abar).reshape(3, -1), (abar**0.5 * mean).expand(3, -1))
    torch.testing.assert_close(start(eps, abar).reshape(3, -1) - abar**0.5 * mean, eps.reshape(3, -1) @ scale.T)
    # and the forward process's own x_t agree with it in the mean, over many draws
    x_t = add_noise(images.repeat(50, 1, 1, 1), torch.randn(50 * len(images), 1, 4, 4, generator=make_generator(1, "e")),
                    0, torch.tensor([abar], dtype=torch.float64))
    assert (x_t.reshape(len(x_t), -1).double().mean(0) - abar**0.5 * mean).abs().max() < 0.02


def test_the_matched_start_at_abar_0_is_the_noise_itself_and_keeps_dtype():
    start = MatchedStart(_digits_like())
    eps = torch.randn(5, 1, 4, 4, generator=make_generator(0, "eps"))
    assert torch.equal(start(eps, 0.0), eps)
    assert start(eps.to(torch.bfloat16), 0.5).dtype == torch.bfloat16


def test_the_matched_start_refuses_what_it_cannot_match():
    with pytest.raises(ValueError, match=r"needs \(N, C, H, W\) images with N >= 2"):
        MatchedStart(torch.zeros(1, 1, 4, 4))
    start = MatchedStart(_digits_like())
    with pytest.raises(ValueError, match=r"eps must be \(N, 1, 4, 4\), got \(2, 1, 8, 8\)"):
        start(torch.zeros(2, 1, 8, 8), 0.5)
    with pytest.raises(ValueError, match=r"abar_t must lie in \[0, 1\], got 1.5"):
        start.scale(1.5)


def test_sample_starts_from_start_of_its_first_draw_and_draws_the_rest_as_before():
    model = TinyNoiseModel(variance_type="fixed_small", alphas_cumprod=DDPMSchedule(300).zero_based_alphas_cumprod,
                           channels=1, size=4)
    model.strided_timesteps = lambda: list(MNIST_TIMESTEPS)
    condition = model.encode("")
    first = {}

    def record(i, t, x_t):
        first.setdefault("x", x_t.clone())

    plain = sample(model, 3, condition, make_generator(0, "s"), callback=record)
    eps = first.pop("x")
    same = sample(model, 3, condition, make_generator(0, "s"), start=lambda e, abar: e)
    assert torch.equal(same, plain)
    start = MatchedStart(_digits_like())
    matched = sample(model, 3, condition, make_generator(0, "s"), start=start, callback=record)
    abar_first = float(model.alphas_cumprod[MNIST_TIMESTEPS[0]])
    torch.testing.assert_close(first["x"], start(eps, abar_first))
    assert not torch.allclose(matched, plain)
