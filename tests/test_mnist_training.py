"""Part B DDPM schedule and losses against diffusers, the recipes and the training loops (sampling:
test_partb_sampling.py)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from diffusers import DDPMScheduler

from diffusion_lab import seeding
from diffusion_lab.mnist import ddpm, denoiser
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.mnist.precision import resolve_precision
from diffusion_lab.mnist.training import seeded, train_ddpm, train_denoiser
from diffusion_lab.mnist.unet import ClassConditionalUNet, TimeConditionalUNet, one_hot
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


class _Recorder(torch.nn.Module):
    """Records its inputs and answers 0.5 x + t + sum(c) per row, so a loss can be worked out by hand."""

    def __init__(self, num_classes=None):
        super().__init__()
        self.num_classes, self.seen = num_classes, []

    def forward(self, x, t=None, c=None):
        self.seen.append((x, t, c))
        shift = torch.zeros(x.shape[0]) if t is None else t + (0 if c is None else c.sum(dim=1))
        return 0.5 * x + shift.view(-1, 1, 1, 1)


@pytest.mark.parametrize("p_uncond, gamma, floor", [(None, None, 0.0), (0.3, None, 0.0), (None, 5.0, 0.2),
                                                     (0.3, 5.0, 0.2)])
def test_ddpm_losses_are_the_epsilon_loss_by_hand(p_uncond, gamma, floor):
    """The two phases (`draw_ddpm_batch`, `ddpm_loss_from`) and the one-step loss against the epsilon
    loss worked out here: t, eps, then the dropout mask drawn from the generator and nothing else;
    abar_t from the product of the 1 - beta_s; Min-SNR weights min(SNR, gamma) / SNR, floored."""
    T, beta1, beta2, n = 50, 1e-4, 0.02, 64
    schedule = ddpm.DDPMSchedule(T, beta1, beta2)
    x_0 = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(n) % 10
    generator, hand = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    draws = ddpm.draw_ddpm_batch(schedule, x_0.shape, generator, p_uncond, gamma, floor)

    t = torch.randint(1, T + 1, (n,), generator=hand)
    eps = torch.randn(x_0.shape, generator=hand)
    keep = None if p_uncond is None else (torch.rand(n, generator=hand) >= p_uncond).float()
    assert torch.equal(generator.get_state(), hand.get_state())
    betas = [beta1 + (beta2 - beta1) * k / (T - 1) for k in range(T)]
    abar = torch.tensor([math.prod(1 - beta for beta in betas[:step]) for step in t.tolist()], dtype=torch.float64)
    snr = abar / (1 - abar)
    weights = None if gamma is None else (torch.minimum(snr, torch.tensor(gamma)) / snr).clamp(min=floor).float()

    assert torch.equal(draws.noise, eps) and draws.abar.dtype == torch.float32
    torch.testing.assert_close(draws.abar, abar.float())
    torch.testing.assert_close(draws.time, t.float() / T)
    assert (draws.keep is None) == (keep is None) and (draws.weights is None) == (weights is None)
    if keep is not None:
        assert torch.equal(draws.keep, keep) and 0 < int((keep == 0).sum()) < n
    if weights is not None:
        torch.testing.assert_close(draws.weights, weights)
        assert weights.min() < 1  # the weighting is exercised

    c = None if keep is None else torch.eye(10)[labels] * keep[:, None]
    x_t = abar.sqrt().float().view(-1, 1, 1, 1) * x_0 + (1 - abar).sqrt().float().view(-1, 1, 1, 1) * eps
    eps_hat = 0.5 * x_t + (t.float() / T + (0 if c is None else c.sum(dim=1))).view(-1, 1, 1, 1)
    per_sample = (eps_hat - eps).pow(2).mean(dim=(1, 2, 3))
    want = per_sample.mean() if weights is None else (weights * per_sample).mean()

    model = _Recorder(None if p_uncond is None else 10)
    torch.testing.assert_close(ddpm.ddpm_loss_from(model, x_0, labels, draws), want)
    seen_x_t, seen_t, seen_c = model.seen[0]
    torch.testing.assert_close(seen_x_t, x_t)
    assert (seen_c is None) == (c is None) and (c is None or torch.equal(seen_c, c))
    if p_uncond is None:
        got = ddpm.time_conditioned_loss(model, schedule, x_0, torch.Generator().manual_seed(2), gamma, floor)
    else:
        got = ddpm.class_conditioned_loss(model, schedule, x_0, labels, torch.Generator().manual_seed(2), p_uncond,
                                          gamma, floor)
    torch.testing.assert_close(got, want)


def test_denoiser_loss_is_the_l2_loss_by_hand():
    """B1.2: eps alone drawn from the generator; the UNet sees x + sigma eps and is scored against x."""
    x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    generator, hand = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    draws = denoiser.draw_denoiser_batch(x.shape, generator)
    eps = torch.randn(x.shape, generator=hand)
    assert torch.equal(draws.noise, eps) and torch.equal(generator.get_state(), hand.get_state())
    model = _Recorder()
    loss = denoiser.denoiser_loss_from(model, x, 0.5, draws)
    torch.testing.assert_close(model.seen[0][0], x + 0.5 * eps)
    torch.testing.assert_close(loss, (0.5 * (x + 0.5 * eps) - x).pow(2).mean())


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


def test_ema_rides_along_without_changing_training(mnist):
    short = dataclasses.replace(TINY.time_ddpm, train_subset=128, epochs=2, checkpoint_epochs=(1, 2),
                                checkpoint_labels=("a", "b"))
    plain = train_ddpm(short, mnist, "cpu", seed=3, conditional=False, progress=False)
    averaged = train_ddpm(dataclasses.replace(short, ema_decay=0.9), mnist, "cpu", seed=3, conditional=False,
                          progress=False)
    assert plain.ema_checkpoints == {} and sorted(averaged.ema_checkpoints) == [1, 2]
    assert plain.losses == averaged.losses
    for key, value in plain.checkpoints[2].items():
        assert torch.equal(value, averaged.checkpoints[2][key]), key
    weight = "head.weight"
    assert not torch.equal(averaged.ema_checkpoints[2][weight], averaged.checkpoints[2][weight])
    TimeConditionalUNet(1, short.num_hiddens).load_state_dict(averaged.ema_checkpoints[2])


def test_one_cycle_warms_up_then_decays_to_almost_nothing():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=4e-3)
    from diffusion_lab.mnist.train_step import _lr_schedulers

    per_epoch, per_step = _lr_schedulers(optimizer, "one_cycle", None, 4e-3, total_steps=100, warmup_fraction=0.3)
    assert per_epoch is None
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        per_step.step()
    assert rates[0] == pytest.approx(4e-3 / 25)
    assert max(rates) == pytest.approx(4e-3) and rates.index(max(rates)) in (29, 30)
    assert rates[-1] < 4e-3 / 100
    assert all(a <= b for a, b in zip(rates[:29], rates[1:30]))  # warm-up rises
    assert all(a >= b for a, b in zip(rates[30:], rates[31:]))  # then only falls
    with pytest.raises(ValueError, match="lr_schedule"):
        _lr_schedulers(optimizer, "cosine", None, 1e-3, 10, 0.3)


def test_a_constant_schedule_keeps_the_rate_for_every_step():
    from diffusion_lab.mnist.train_step import _lr_schedulers

    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2.5e-3)
    assert _lr_schedulers(optimizer, "constant", 0.5, 2.5e-3, total_steps=100, warmup_fraction=0.3) == (None, None)
    assert optimizer.param_groups[0]["lr"] == 2.5e-3


def test_min_snr_weights_cap_the_clean_timesteps_only():
    schedule = ddpm.DDPMSchedule()
    t = torch.tensor([1, 10, 100, 300])
    weights = ddpm.loss_weights(schedule, t, min_snr_gamma=5.0)
    snr = schedule.alphas_cumprod[t] / (1 - schedule.alphas_cumprod[t])
    assert torch.all(weights[snr > 5] < 1) and torch.all(weights[snr <= 5] == 1)
    torch.testing.assert_close(weights[0].double(), 5.0 / snr[0], rtol=1e-6, atol=0)
    assert ddpm.loss_weights(schedule, t, None) is None
    floored = ddpm.loss_weights(schedule, t, min_snr_gamma=5.0, floor=0.2)
    assert floored[0] == pytest.approx(0.2) and torch.equal(floored[snr <= 5], weights[snr <= 5])
    assert torch.all(floored >= weights)


def test_uniform_weighting_is_the_course_loss(mnist):
    """Weights of 1 everywhere (a huge gamma) give exactly the unweighted B2.2 loss."""
    schedule = ddpm.DDPMSchedule()
    model = seeded(lambda: TimeConditionalUNet(1, 8), 0, "w")
    x = mnist.train_images[:16]
    plain = ddpm.time_conditioned_loss(model, schedule, x, torch.Generator().manual_seed(0))
    weighted = ddpm.time_conditioned_loss(model, schedule, x, torch.Generator().manual_seed(0), min_snr_gamma=1e12)
    torch.testing.assert_close(weighted, plain, rtol=1e-6, atol=0)


def test_recipe_refuses_ema_sampling_without_an_ema():
    with pytest.raises(ValueError, match="ema_decay"):
        dataclasses.replace(TINY.time_ddpm, sample_weights="ema")


def test_a_warm_started_class_unet_begins_as_the_time_conditioned_one():
    from diffusion_lab.mnist.training import warm_started_class_unet

    time_unet = seeded(lambda: TimeConditionalUNet(1, 8), 0, "time").eval()
    class_unet = warm_started_class_unet(seeded(lambda: ClassConditionalUNet(1, 10, 8), 0, "class"),
                                         time_unet.state_dict()).eval()
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.1, 0.4, 0.7, 1.0])
    c = one_hot(torch.tensor([0, 3, 9, 9]))
    c[3] = 0  # "no class"
    torch.testing.assert_close(class_unet(x, t, c), time_unet(x, t), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="width"):
        warm_started_class_unet(ClassConditionalUNet(1, 10, 16), time_unet.state_dict())


def test_class_training_from_a_warm_start_changes_the_class_embeddings(mnist):
    short = dataclasses.replace(TINY.class_ddpm, train_subset=128, epochs=1, checkpoint_epochs=(1,),
                                checkpoint_labels=("end",), warm_start=True)
    time_state = seeded(lambda: TimeConditionalUNet(1, short.num_hiddens), 0, "time").state_dict()
    result = train_ddpm(short, mnist, "cpu", seed=0, conditional=True, progress=False, warm_start=time_state)
    assert not torch.all(result.checkpoints[1]["c1.2.weight"] == 0)  # it learned class-dependent scales
    with pytest.raises(ValueError, match="class-conditioned"):
        train_ddpm(short, mnist, "cpu", seed=0, conditional=False, progress=False, warm_start=time_state)


# --- the training step against the course's losses, written out here ----------------------------


def _reference_loss(run_name, recipe):
    """(model, x, labels, generator) -> loss: the one-step losses of ddpm / flow_matching (held to
    hand computations in test_ddpm_losses_are_the_epsilon_loss_by_hand and its flow twin), and the
    denoiser's loss written out."""
    import torch.nn.functional as F

    from diffusion_lab.mnist import flow_matching

    schedule = ddpm.DDPMSchedule(getattr(recipe, "num_timesteps", 300), getattr(recipe, "beta1", 1e-4),
                                 getattr(recipe, "beta2", 0.02))
    return {
        "denoiser": lambda m, x, y, g: F.mse_loss(m(x + recipe.sigma * torch.randn(x.shape, generator=g)).float(), x),
        "time_ddpm": lambda m, x, y, g: ddpm.time_conditioned_loss(m, schedule, x, g, recipe.min_snr_gamma,
                                                                   recipe.min_snr_floor),
        "class_ddpm": lambda m, x, y, g: ddpm.class_conditioned_loss(m, schedule, x, y, g, recipe.p_uncond,
                                                                     recipe.min_snr_gamma, recipe.min_snr_floor),
        "time_flow": lambda m, x, y, g: flow_matching.time_conditioned_loss(m, x, g, recipe.time_distribution),
        "class_flow": lambda m, x, y, g: flow_matching.class_conditioned_loss(m, x, y, g, recipe.p_uncond,
                                                                              recipe.time_distribution),
    }[run_name]


def _network(run_name, width):
    from diffusion_lab.mnist.unet import UnconditionalUNet

    if run_name == "denoiser":
        return UnconditionalUNet(1, width)
    return ClassConditionalUNet(1, 10, width) if run_name.startswith("class") else TimeConditionalUNet(1, width)


# (run, recipe changes): the tiny recipes, and the quick profile's additions on the DDPMs and flows
STEP_CASES = [
    ("denoiser", {}),
    ("time_ddpm", {}),
    ("class_ddpm", {"p_uncond": 0.3}),
    ("time_flow", {}),
    ("class_flow", {"p_uncond": 0.3}),
    ("time_ddpm", {"min_snr_gamma": 5.0, "min_snr_floor": 0.2, "lr_schedule": "one_cycle", "ema_decay": 0.9}),
    ("class_ddpm", {"min_snr_gamma": 5.0, "lr_schedule": "one_cycle", "warmup_fraction": 0.5}),
    ("class_flow", {"time_distribution": "logit_normal", "ema_decay": 0.5}),
]


@pytest.mark.parametrize("run_name, changes", STEP_CASES)
def test_a_recipe_loss_through_its_draws_by_name_is_the_loss_fit_takes(mnist, run_name, changes):
    """The form a CUDA graph's static buffers take (`RecipeLoss.draw`: the draws by name, here with a
    batch index beside them, then `RecipeLoss.loss`) carries every draw of the recipe and gives the
    bits of the loss `fit` calls with the same generator."""
    from diffusion_lab.mnist.training import recipe_loss

    recipe = dataclasses.replace(getattr(TINY, run_name), **changes)
    loss = recipe_loss(run_name, recipe)
    model = seeded(lambda: _network(run_name, 8), 0, "loss")
    x, y = mnist.train_images[:32], mnist.train_labels[:32]
    drawn = loss.draw(x.shape, torch.Generator().manual_seed(5))
    names = {"denoiser": {"noise"}, "ddpm": {"noise", "abar", "time"}, "flow": {"t", "noise"}}[run_name.split("_")[-1]]
    names |= {"keep"} if run_name.startswith("class") else set()
    names |= {"weights"} if getattr(recipe, "min_snr_gamma", None) is not None else set()
    assert drawn.keys() == names and all(value.shape[0] == 32 for value in drawn.values())
    got = loss.loss(model, x, y, {"index": torch.arange(32), **drawn})
    assert torch.equal(got, loss(model, x, y, torch.Generator().manual_seed(5)))


def _reference_training(run_name, recipe, data, seed):
    """`fit` written out: the seeded subset, init and shuffle, Adam on the course loss, the schedules
    and the EMA d_k = min(decay, (1 + k) / (10 + k)) of the float tensors (integer ones are copied).
    (losses, final state, final EMA state or None)."""
    def generator(purpose):
        return seeding.make_generator(seed, f"{run_name}/{purpose}")

    keep = torch.randperm(data.train_images.shape[0], generator=generator("subset"))[: recipe.train_subset]
    images, labels = data.train_images[keep], data.train_labels[keep]
    model = seeded(lambda: _network(run_name, recipe.num_hiddens), seed, f"{run_name}/init").train()
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate, fused=True)
    steps = recipe.epochs * -(-recipe.train_subset // recipe.batch_size)
    one_cycle = getattr(recipe, "lr_schedule", "exponential") == "one_cycle"
    if one_cycle:
        per_step = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.learning_rate, total_steps=steps, pct_start=recipe.warmup_fraction,
            anneal_strategy="cos", cycle_momentum=False, div_factor=25.0, final_div_factor=1e4)
    decay = getattr(recipe, "ema_decay", None)
    ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()} if decay else None
    loss_of, noise, shuffle = _reference_loss(run_name, recipe), generator("noise"), generator("shuffle")
    losses, k = [], 0
    for _epoch in range(recipe.epochs):
        order = torch.randperm(images.shape[0], generator=shuffle)
        for begin in range(0, images.shape[0], recipe.batch_size):
            index = order[begin : begin + recipe.batch_size]
            loss = loss_of(model, images[index], labels[index], noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if one_cycle:
                per_step.step()
            k += 1
            if ema is not None:
                d = min(decay, (1 + k) / (10 + k))
                for key, value in model.state_dict().items():
                    if value.is_floating_point():
                        ema[key].mul_(d).add_(value, alpha=1 - d)
                    else:
                        ema[key] = value.clone()
            losses.append(loss.item())
        if run_name != "denoiser" and not one_cycle:
            for group in optimizer.param_groups:
                group["lr"] *= recipe.lr_gamma
    return losses, model.state_dict(), ema


@pytest.mark.parametrize("run_name, changes", STEP_CASES)
def test_training_is_adam_on_the_course_loss(mnist, run_name, changes):
    """Two epochs of two steps (the second a short batch): `fit`'s losses, weights and EMA are the
    bits of the training loop written out above."""
    from diffusion_lab.mnist.training import train_ddpm, train_flow_matching

    recipe = dataclasses.replace(getattr(TINY, run_name), train_subset=96, batch_size=64, epochs=2, **changes)
    if run_name == "denoiser":
        result = train_denoiser(recipe, mnist, "cpu", seed=7, progress=False)
    else:
        train = train_ddpm if run_name.endswith("ddpm") else train_flow_matching
        result = train(recipe, mnist, "cpu", seed=7, conditional=run_name.startswith("class"), progress=False)
    losses, state, ema = _reference_training(run_name, recipe, mnist, seed=7)
    assert result.losses == losses and len(losses) == 4
    assert state.keys() == result.checkpoints[2].keys()
    for key, value in state.items():
        assert torch.equal(result.checkpoints[2][key], value), key
    assert (ema is None) == (result.ema_checkpoints == {})
    for key, value in (ema or {}).items():
        assert torch.equal(result.ema_checkpoints[2][key], value.to(state[key].dtype)), key


# --- checkpoints at fractions of training ------------------------------------------------------


def test_a_checkpoint_falls_after_the_step_that_ends_its_share_of_training():
    from diffusion_lab.mnist.training import checkpoint_step, checkpoint_steps

    assert checkpoint_step(0.2, 938) == 188  # 187.6 steps: the 188th ends the first fifth
    assert checkpoint_step(0.1, 10) == 1  # 0.1 * 10 is 1.0000000000000002 in floats
    assert [checkpoint_step(e, 10) for e in (0.3, 0.6, 0.7, 1, 2)] == [3, 6, 7, 10, 20]
    assert checkpoint_steps((0.25, 1.0, 1), 2, 4) == {1: 0.25, 4: 1, 8: 2}
    assert list(checkpoint_steps((0.25, 1.0), 2, 4).values()) == [0.25, 1, 2]
    with pytest.raises(ValueError, match=r"\(0, 2\]"):
        checkpoint_steps((0,), 2, 4)
    with pytest.raises(ValueError, match=r"\(0, 2\]"):
        checkpoint_steps((2.5,), 2, 4)
    with pytest.raises(ValueError, match="both fall after step 1"):
        checkpoint_steps((0.1, 0.2), 2, 4)


def test_fractional_checkpoints_hold_the_weights_after_their_step_and_change_nothing(mnist):
    """A run keeping checkpoints at 0.25, 0.5 and 1.75 of 2 epochs (4 steps each) ends with the very
    bits and losses of the run that keeps only the last, and each checkpoint is the weights the
    next step starts from."""
    from diffusion_lab.mnist.training import fit, recipe_loss, recipe_model

    recipe = dataclasses.replace(TINY.time_flow, train_subset=256, epochs=2, checkpoint_epochs=(2,),
                                 checkpoint_labels=("end",), ema_decay=0.9)
    images, labels = mnist.train_images[:256], mnist.train_labels[:256]

    def run(checkpoint_epochs):
        starts = []  # the weights each step starts from
        loss = recipe_loss("time_flow", recipe)

        def spy(model, x, y, generator):
            starts.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            return loss(model, x, y, generator)

        model = seeded(lambda: recipe_model("time_flow", recipe), 0, "time_flow/init")
        result = fit(model, images, labels, spy, run_name="time_flow", seed=0, batch_size=64, epochs=2,
                     learning_rate=3e-3, lr_gamma=recipe.lr_gamma, ema_decay=0.9, checkpoint_epochs=checkpoint_epochs,
                     checkpoint_labels=tuple(f"at {e}" for e in checkpoint_epochs), progress=False)
        return result, starts

    plain, _ = run(())
    kept, starts = run((0.25, 0.5, 1.75))
    assert kept.losses == plain.losses
    assert sorted(kept.checkpoints) == sorted(kept.ema_checkpoints) == [0.25, 0.5, 1.75, 2]
    for key, value in plain.checkpoints[2].items():
        assert torch.equal(value, kept.checkpoints[2][key]), key
        assert torch.equal(plain.ema_checkpoints[2][key], kept.ema_checkpoints[2][key]), key
    for epoch, step in ((0.25, 1), (0.5, 2), (1.75, 7)):
        for key, value in kept.checkpoints[epoch].items():
            assert torch.equal(value, starts[step][key]), (epoch, key)
    assert any(not torch.equal(value, kept.checkpoints[0.5][key]) for key, value in kept.checkpoints[0.25].items())
    assert kept.checkpoint_labels[0.25] == "at 0.25" and kept.summary()["checkpoint_labels"]["0.25"] == "at 0.25"
