"""Flow matching (the course's current Part B): the path, its target, the losses, the Euler and
Heun samplers and guidance through the one CFG formula."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from diffusion_lab import flow_sampling, sampling
from diffusion_lab.mnist import flow_matching
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.mnist.recipes import FlowMatchingRecipe
from diffusion_lab.mnist.training import train_flow_matching
from diffusion_lab.mnist.unet import ClassConditionalUNet, TimeConditionalUNet
from diffusion_lab.profiles import get_profile


def _pair(n=4):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 5, 5, generator=generator), torch.rand(n, 1, 5, 5, generator=generator)


def test_the_path_starts_at_noise_and_ends_at_the_digit():
    x_0, x_1 = _pair()
    torch.testing.assert_close(flow_matching.interpolate(x_0, x_1, torch.zeros(4)), x_0)
    torch.testing.assert_close(flow_matching.interpolate(x_0, x_1, torch.ones(4)), x_1)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    x_t = flow_matching.interpolate(x_0, x_1, t)
    for i, ti in enumerate(t.tolist()):
        torch.testing.assert_close(x_t[i], (1 - ti) * x_0[i] + ti * x_1[i])


def test_the_target_is_the_paths_velocity_on_a_known_pair():
    x_0, x_1 = torch.full((1, 1, 2, 2), -1.0), torch.full((1, 1, 2, 2), 0.5)
    torch.testing.assert_close(flow_matching.velocity_target(x_0, x_1), torch.full((1, 1, 2, 2), 1.5))
    # The velocity is the path's derivative: a finite difference of `interpolate` gives it back.
    x_0, x_1 = _pair()
    t, h = torch.full((4,), 0.3), 1e-3
    slope = (flow_matching.interpolate(x_0, x_1, t + h) - flow_matching.interpolate(x_0, x_1, t)) / h
    torch.testing.assert_close(slope, flow_matching.velocity_target(x_0, x_1), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("sampler", flow_sampling.SAMPLERS)
def test_one_step_on_the_exact_velocity_lands_on_the_digit(sampler):
    x_0, x_1 = _pair()
    exact = lambda x, t: x_1 - x_0  # noqa: E731 - the straight path's velocity, the same at every t
    torch.testing.assert_close(flow_sampling.integrate(exact, x_0, 1, sampler), x_1)


def test_heun_is_second_order_and_euler_first():
    """On dx/dt = x from x(0) = 1 (exact: e), halving h divides Euler's error by ~2, Heun's by ~4."""
    grow = lambda x, t: x  # noqa: E731
    x_0 = torch.ones(1, dtype=torch.float64)
    exact = torch.e

    def error(sampler, steps):
        return abs(flow_sampling.integrate(grow, x_0, steps, sampler).item() - exact)

    assert 1.8 < error("euler", 16) / error("euler", 32) < 2.2
    assert 3.6 < error("heun", 16) / error("heun", 32) < 4.4
    assert error("heun", 16) < error("euler", 32) / 10


def test_the_callback_sees_every_step_and_the_end():
    seen = []
    flow_sampling.integrate(lambda x, t: torch.zeros_like(x), torch.zeros(1), 4, "heun",
                            callback=lambda i, t, x: seen.append((i, t)))
    assert seen == [(0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75), (4, 1.0)]


def test_network_evaluations_per_sample():
    assert flow_sampling.evaluations_per_sample("euler", 50) == 50
    assert flow_sampling.evaluations_per_sample("heun", 5) == 10
    with pytest.raises(ValueError, match="sampler must be one of euler, heun"):
        flow_sampling.evaluations_per_sample("rk4", 5)
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        flow_sampling.integrate(lambda x, t: x, torch.zeros(1), 0)


def test_sampling_draws_only_the_starting_noise_from_its_generator():
    shape = (3, 1, 4, 4)
    first = flow_sampling.sample(lambda x, t: -x, shape, torch.Generator().manual_seed(5), 3)
    again = flow_sampling.sample(lambda x, t: -x, shape, torch.Generator().manual_seed(5), 3)
    x_0 = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(first, again)
    torch.testing.assert_close(first, x_0 * (2 / 3) ** 3)  # Euler on dx/dt = -x, h = 1/3


def _spy_predict(calls):
    def predict(x, t, condition):
        calls.append(x.shape[0])
        return x + condition.sum(dim=1).view(-1, 1, 1, 1)  # a velocity that depends on the condition
    return predict


@pytest.mark.parametrize("guidance", [0.0, 1.0, 5.0])
def test_guided_velocity_is_the_one_cfg_formula_in_one_call(guidance):
    calls = []
    x = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    condition = torch.eye(10)[[3, 7]]
    uncond = torch.zeros(2, 10)
    guided = flow_sampling.guided_velocity(_spy_predict(calls), condition, uncond, guidance)(x, 0.5)
    if guidance == 1.0:
        assert calls == [2], "at g = 1 CFG is the conditional velocity: no unconditional half"
    else:
        assert calls == [4], "both halves of CFG go through one network call"
    conditional, unconditional = x + 1, x
    torch.testing.assert_close(guided, sampling.guide(conditional, unconditional, guidance))
    if guidance == 1.0:
        torch.testing.assert_close(guided, conditional)
    if guidance == 0.0:
        torch.testing.assert_close(guided, unconditional)
    unguided = flow_sampling.guided_velocity(_spy_predict(calls), condition, uncond, None)(x, 0.5)
    torch.testing.assert_close(unguided, conditional)


def test_the_class_loss_drops_about_p_uncond_of_the_classes():
    seen = []

    class Spy(torch.nn.Module):
        num_classes = 10

        def forward(self, x, t, c):
            seen.append(c)
            return torch.zeros_like(x)

    x_1 = torch.rand(4000, 1, 2, 2)
    labels = torch.arange(4000) % 10
    flow_matching.class_conditioned_loss(Spy(), x_1, labels, torch.Generator().manual_seed(0), p_uncond=0.1)
    dropped = (seen[0].sum(dim=1) == 0).float().mean().item()
    assert 0.08 < dropped < 0.12
    kept = seen[0].sum(dim=1) == 1
    assert torch.equal(seen[0][kept].argmax(dim=1), labels[kept])


class _Recorder(torch.nn.Module):
    """Records its inputs and answers 0.5 x + t + sum(c) per row, so the loss can be worked out by hand."""

    def __init__(self, num_classes=None):
        super().__init__()
        self.num_classes, self.seen = num_classes, []

    def forward(self, x, t, c=None):
        self.seen.append((x, t, c))
        return 0.5 * x + (t + (0 if c is None else c.sum(dim=1))).view(-1, 1, 1, 1)


@pytest.mark.parametrize("p_uncond, time_distribution", [(None, "uniform"), (0.3, "uniform"),
                                                         (None, "logit_normal"), (0.3, "logit_normal")])
def test_flow_losses_are_the_velocity_loss_by_hand(p_uncond, time_distribution):
    """The two phases (`draw_flow_batch`, `flow_loss_from`) and the one-step loss against the
    velocity loss worked out here: t, x_0, then the dropout mask drawn from the generator and nothing
    else; the network sees (1 - t) x_0 + t x_1 and is scored against x_1 - x_0."""
    n = 64
    x_1 = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(n) % 10
    generator, hand = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    draws = flow_matching.draw_flow_batch(x_1.shape, generator, p_uncond, time_distribution)

    t = torch.rand(n, generator=hand) if time_distribution == "uniform" else torch.randn(n, generator=hand).sigmoid()
    x_0 = torch.randn(x_1.shape, generator=hand)
    keep = None if p_uncond is None else (torch.rand(n, generator=hand) >= p_uncond).float()
    assert torch.equal(generator.get_state(), hand.get_state())
    assert torch.equal(draws.t, t) and torch.equal(draws.noise, x_0)
    assert (draws.keep is None) == (keep is None)
    if keep is not None:
        assert torch.equal(draws.keep, keep) and 0 < int((keep == 0).sum()) < n

    c = None if keep is None else torch.eye(10)[labels] * keep[:, None]
    x_t = (1 - t).view(-1, 1, 1, 1) * x_0 + t.view(-1, 1, 1, 1) * x_1
    u = 0.5 * x_t + (t + (0 if c is None else c.sum(dim=1))).view(-1, 1, 1, 1)
    want = (u - (x_1 - x_0)).pow(2).mean()

    model = _Recorder(None if p_uncond is None else 10)
    torch.testing.assert_close(flow_matching.flow_loss_from(model, x_1, labels, draws), want)
    seen_x_t, seen_t, seen_c = model.seen[0]
    torch.testing.assert_close(seen_x_t, x_t)
    assert torch.equal(seen_t, t) and (seen_c is None) == (c is None) and (c is None or torch.equal(seen_c, c))
    if p_uncond is None:
        got = flow_matching.time_conditioned_loss(model, x_1, torch.Generator().manual_seed(2), time_distribution)
    else:
        got = flow_matching.class_conditioned_loss(model, x_1, labels, torch.Generator().manual_seed(2), p_uncond,
                                                   time_distribution)
    torch.testing.assert_close(got, want)


def test_a_zero_velocity_model_scores_the_mean_square_target():
    """With u = 0 the loss is E|x_1 - x_0|^2 = E x_1^2 + 1 per pixel: the loss compares with the
    velocity target, not with the digit or the noise."""
    class Zero(torch.nn.Module):
        def forward(self, x, t):
            return torch.zeros_like(x)

    x_1 = torch.full((20000, 1, 2, 2), 0.5)
    loss = flow_matching.time_conditioned_loss(Zero(), x_1, torch.Generator().manual_seed(0))
    assert abs(loss.item() - 1.25) < 0.02


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def _tiny_recipe(**changes) -> FlowMatchingRecipe:
    return dataclasses.replace(get_profile("tiny").partb.time_flow, **changes)


@pytest.mark.parametrize("conditional", [False, True])
def test_flow_matching_training_lowers_the_loss_and_repeats_for_a_seed(mnist, conditional):
    recipe = _tiny_recipe(train_subset=512, epochs=2, checkpoint_epochs=(2,), checkpoint_labels=("end",))
    first = train_flow_matching(recipe, mnist, "cpu", seed=3, conditional=conditional, progress=False)
    again = train_flow_matching(recipe, mnist, "cpu", seed=3, conditional=conditional, progress=False)
    assert first.losses == again.losses
    assert isinstance(first.model, ClassConditionalUNet if conditional else TimeConditionalUNet)
    n = first.steps_per_epoch
    assert sum(first.losses[-n:]) / n < 0.8 * sum(first.losses[:n]) / n


def test_full_flow_rows_are_the_course_recipe():
    """The course's flow-matching Part B: D = 64, batch 64, Adam 1e-2 decayed exponentially to 0.1 of
    it over 10 epochs, checkpoints after epochs 1, 5 and 10, class dropout 0.1; Euler, 50 steps."""
    full = get_profile("full")
    for recipe in (full.partb.time_flow, full.partb.class_flow):
        assert (recipe.num_hiddens, recipe.batch_size, recipe.epochs, recipe.learning_rate) == (64, 64, 10, 1e-2)
        assert recipe.lr_schedule == "exponential" and recipe.lr_total_decay == 0.1
        assert recipe.lr_gamma ** recipe.epochs == pytest.approx(0.1)
        assert recipe.checkpoint_epochs == (1, 5, 10) and recipe.train_subset is None
        assert recipe.p_uncond == 0.1 and not recipe.warm_start and recipe.ema_decay is None
    assert (full.flow.sampler, full.flow.steps) == ("euler", 50)


@pytest.mark.parametrize("profile", ["tiny", "quick"])
def test_flow_models_train_at_the_ddpms_compute(profile):
    """The comparison's premise: each flow model shares width, batch, schedule, precision, images
    seen and warm start with its DDPM (in `full` each follows its own course's recipe)."""
    book = get_profile(profile).partb
    for ddpm, flow in ((book.time_ddpm, book.time_flow), (book.class_ddpm, book.class_flow)):
        for name in ("num_hiddens", "batch_size", "precision", "lr_schedule", "warm_start"):
            assert getattr(ddpm, name) == getattr(flow, name), (profile, name)
        assert ddpm.epochs * (ddpm.train_subset or 60_000) == flow.epochs * (flow.train_subset or 60_000)


def test_logit_normal_times_are_sigmoids_of_standard_normals():
    """The same generator state gives t = sigmoid(z) for the z a standard normal draw would give."""
    times = flow_matching.sample_times(20_000, torch.Generator().manual_seed(0), "logit_normal")
    z = torch.randn(20_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(times, torch.sigmoid(z))
    assert 0.0 < times.min() and times.max() < 1.0
    # more of the mass in the middle than U[0, 1): P(0.25 < t < 0.75) = P(|z| < log 3) = 0.73
    assert abs(((times > 0.25) & (times < 0.75)).float().mean().item() - 0.7275) < 0.01


def test_an_unknown_time_distribution_is_refused_when_the_recipe_is_made():
    with pytest.raises(ValueError, match="time_distribution must be one of uniform, logit_normal"):
        _tiny_recipe(time_distribution="beta")
    with pytest.raises(ValueError, match="uniform, logit_normal"):
        flow_matching.sample_times(4, torch.Generator(), "cosine")


def test_the_course_rows_train_on_uniform_times():
    for recipe in (get_profile("full").partb.time_flow, get_profile("full").partb.class_flow):
        assert recipe.time_distribution == "uniform"


def test_quick_keeps_the_flow_models_at_the_courses_fractions_of_training():
    """The course keeps its flow models after epochs 1, 5 and 10 of 10; quick after the steps that end
    1/10, 5/10 and 10/10 of its training, labelled as standing in for those epochs; full after the
    epochs themselves."""
    from diffusion_lab.mnist.training import checkpoint_steps

    course_epochs = (1, 5, 10)
    for profile in ("quick", "full"):
        book = get_profile(profile).partb
        for recipe in (book.time_flow, book.class_flow):
            per_epoch = -(-(recipe.train_subset or 60_000) // recipe.batch_size)
            total = recipe.epochs * per_epoch
            steps = list(checkpoint_steps(recipe.checkpoint_epochs, recipe.epochs, per_epoch))
            assert steps == [-(-total * e // 10) for e in course_epochs], (profile, steps)
            for label, epoch in zip(recipe.checkpoint_labels, course_epochs):
                assert (f"stands in for epoch {epoch} of 10" in label) == (profile == "quick"), label
    assert get_profile("full").partb.time_flow.checkpoint_epochs == course_epochs


# --- the constant learning rate --------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["tiny", "quick", "full"])
def test_the_constant_rate_run_differs_from_the_scheduled_one_in_the_schedule_alone(profile):
    """Equal compute: every field but the schedule and its rate is the scheduled time model's (the
    same images, batch, width, precision and checkpoints), and the run trains at one rate throughout."""
    book = get_profile(profile).partb
    scheduled, constant = book.time_flow, book.time_flow_constant_lr
    assert constant.lr_schedule == "constant" != scheduled.lr_schedule
    differing = {f.name for f in dataclasses.fields(scheduled) if getattr(scheduled, f.name) != getattr(constant, f.name)}
    assert differing == {"lr_schedule", "learning_rate"}


def _mean_scheduled_rate(recipe) -> float:
    """The mean learning rate of `recipe`'s schedule over its optimizer steps, stepped by the
    schedulers training uses."""
    from diffusion_lab.mnist.train_step import _lr_schedulers

    per_epoch = -(-(recipe.train_subset or 60_000) // recipe.batch_size)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=recipe.learning_rate)
    epoch_scheduler, step_scheduler = _lr_schedulers(optimizer, recipe.lr_schedule, recipe.lr_gamma,
                                                     recipe.learning_rate, recipe.epochs * per_epoch,
                                                     recipe.warmup_fraction)
    rates = []
    for _ in range(recipe.epochs):
        for _ in range(per_epoch):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if step_scheduler is not None:
                step_scheduler.step()
        if epoch_scheduler is not None:
            epoch_scheduler.step()
    return sum(rates) / len(rates)


@pytest.mark.parametrize("profile", ["tiny", "quick", "full"])
def test_the_constant_rate_is_the_schedules_mean_rate(profile):
    """The rule profiles.py states for the constant rate, from the schedule alone: its mean over the
    steps, to two significant figures (so within 2.5% of it)."""
    book = get_profile(profile).partb
    mean = _mean_scheduled_rate(book.time_flow)
    assert book.time_flow_constant_lr.learning_rate == pytest.approx(mean, rel=0.025)
    assert float(f"{mean:.2g}") == book.time_flow_constant_lr.learning_rate
