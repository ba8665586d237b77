"""The flow-matching Part B runs and the DDPM-vs-flow comparison on the tiny profile: what each
run stores, that the pure-noise UNet collapses, that every sampler spends the evaluations it is
said to, and the sampling helpers' conventions."""

from __future__ import annotations

import pytest
import torch

from diffusion_lab.experiments import partb_compare, partb_flow, partb_training
from diffusion_lab.experiments.partb_records import Comparison, FlowScores, PureNoiseResults, SampleRun, sampled_epochs
from diffusion_lab.experiments.partb_flow_sampling import FlowModel, sample_flow_digits
from diffusion_lab.mnist.unet import ClassConditionalUNet, TimeConditionalUNet
from diffusion_lab.profiles import get_profile
from diffusion_lab.runcache.context import BuildContext

TINY = get_profile("tiny")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> BuildContext:
    return BuildContext.from_env(profile="tiny", seed=0, cache_dir=tmp_path_factory.mktemp("flow") / "cache",
                                 device=torch.device("cpu"))


def test_the_pure_noise_unet_collapses_to_one_image(ctx):
    """Fed pure noise, the L2-trained UNet answers (nearly) the same image for every input: its
    outputs' spread is a small fraction of its inputs' (unit variance)."""
    results = partb_flow.pure_noise_results(ctx)
    stored = results.load("results.pt")
    inputs = stored["inputs"]
    assert inputs.shape == (TINY.showcase.denoiser_digits, 1, 28, 28)
    assert stored["mean_digit"].shape == (1, 1, 28, 28)
    distances = PureNoiseResults.of(results).distances
    for epoch, distance in distances.items():
        assert distance.between_outputs < 0.1 * inputs.std().item(), epoch
        output = stored["outputs"][str(epoch)]
        spread = (output - output.mean(dim=0, keepdim=True)).pow(2).mean(dim=(1, 2, 3)).sqrt().mean().item()
        assert distance.between_outputs == pytest.approx(spread)
    assert sorted(distances) == list(TINY.partb.pure_noise.checkpoint_epochs)


@pytest.mark.parametrize("conditional", [False, True])
def test_flow_samples_after_each_checkpoint_and_the_ode_path(ctx, conditional):
    run = partb_flow.flow_samples(ctx, conditional)
    stored = sampled_epochs(run)
    epochs = sorted(stored)
    recipe = TINY.partb.class_flow if conditional else TINY.partb.time_flow
    assert epochs == list(recipe.checkpoint_epochs)
    count = 10 * TINY.showcase.per_class_grid if conditional else TINY.showcase.time_samples
    steps = TINY.flow.steps
    for epoch in epochs:
        samples = stored[epoch].samples
        assert samples.shape == (count, 1, 28, 28) and torch.isfinite(samples).all()
    last = stored[epochs[-1]]
    assert last.frame_steps[0] == 0 and last.frame_steps[-1] == steps
    assert torch.equal(last.frames[-1], last.samples), "the last frame is the samples"
    assert stored[epochs[0]].frames is None
    assert (run.load("samples.pt")["labels"] is not None) == conditional
    passes = 2 if conditional else 1
    assert SampleRun.of(run).sampling[epochs[-1]].network_evaluations == passes * steps * count


def test_a_warm_started_class_flow_model_starts_from_the_time_model(ctx, monkeypatch):
    """With `warm_start` (quick's class row) the class model's run names the time model's run and
    begins as exactly that model (class embeddings at the identity)."""
    import dataclasses

    from diffusion_lab.mnist import training

    book = dataclasses.replace(TINY.partb, class_flow=dataclasses.replace(TINY.partb.class_flow, warm_start=True))
    from diffusion_lab.runcache import context

    monkeypatch.setattr(context, "get_profile", lambda name: dataclasses.replace(TINY, partb=book))
    started = []
    train = training.train_flow_matching

    def spy(recipe, data, device, seed, conditional, progress, warm_start):
        started.append(warm_start)
        return train(recipe, data, device, seed, conditional, progress, warm_start)

    monkeypatch.setattr(training, "train_flow_matching", spy)
    time_run = partb_training.flow_training(ctx, conditional=False)
    class_run = partb_training.flow_training(ctx, conditional=True)
    assert not class_run.hit and started[-1] is not None
    assert class_run.params["warm_start"] == time_run.key
    assert started[-1].keys() == partb_training.trained_state(time_run).keys()
    assert all(torch.equal(started[-1][k], v) for k, v in partb_training.trained_state(time_run).items())


@pytest.mark.parametrize("conditional", [False, True])
def test_flow_scores_read_the_judges_measures(ctx, conditional):
    row = FlowScores.of(partb_flow.flow_scores(ctx, conditional)).row
    assert row.samples == TINY.showcase.judge_samples
    assert 0.0 <= row.confident_fraction <= 1.0 and sum(row.class_shares) == pytest.approx(1.0)
    assert row.frechet_distance > 0
    assert (row.judge_accuracy is not None) == conditional == (row.per_class_accuracy is not None)


def test_sampler_steps_spend_exactly_the_evaluations():
    assert partb_compare.sampler_steps("euler", 7, 300) == 7
    assert partb_compare.sampler_steps("heun", 10, 300) == 5
    assert partb_compare.sampler_steps("heun", 5, 300) is None, "Heun takes two evaluations a step"
    assert partb_compare.sampler_steps("ddpm", 300, 300) == 300
    assert partb_compare.sampler_steps("ddpm", 301, 300) is None, "the DDPM has T timesteps"


@pytest.mark.parametrize("conditional", [False, True])
def test_the_comparison_measures_every_sampler_that_can_spend_each_count(ctx, conditional):
    run = partb_compare.comparison(ctx, conditional)
    T = TINY.partb.time_ddpm.num_timesteps
    compared = Comparison.of(run)
    measured = {(row.sampler, row.evaluations): row for row in compared.rows}
    for evaluations in TINY.flow.compare_evaluations:
        for sampler in partb_compare.SAMPLERS:
            steps = partb_compare.sampler_steps(sampler, evaluations, T)
            assert ((sampler, evaluations) in measured) == (steps is not None)
            if steps is not None:
                row = measured[(sampler, evaluations)]
                assert row.steps == steps and row.seconds_per_1000 > 0 and row.frechet_distance > 0
                assert (row.judge_accuracy is not None) == conditional
    examples = run.load("examples.pt")
    for evaluations in TINY.flow.compare_grid_evaluations:
        assert examples[f"euler/{evaluations}"].shape == (partb_compare.GRID_COLUMNS, 1, 28, 28)
    assert compared.frechet_floor > 0
    assert compared.images_seen.ddpm == compared.images_seen.flow, "equal compute"


def test_flow_sampling_depends_on_the_seed_and_counts_cfg_once_per_call():
    unet = TimeConditionalUNet(1, 8)
    model = FlowModel(unet, precision="fp32")
    first = sample_flow_digits(model, torch.Generator().manual_seed(0), num_steps=3, num_samples=5)
    again = sample_flow_digits(model, torch.Generator().manual_seed(0), num_steps=3, num_samples=5, batch_size=5)
    other = sample_flow_digits(model, torch.Generator().manual_seed(1), num_steps=3, num_samples=5)
    assert torch.equal(first.samples, again.samples) and not torch.equal(first.samples, other.samples)
    assert first.network_evaluations == 3 * 5
    with pytest.raises(ValueError, match="no class input"):
        model.velocity(torch.tensor([3]), None)
    guided = FlowModel(ClassConditionalUNet(1, 10, 8), precision="fp32")
    result = sample_flow_digits(guided, torch.Generator().manual_seed(0), num_steps=2, sampler="heun",
                                labels=torch.arange(10), guidance_scale=5.0)
    assert result.network_evaluations == 2 * (2 * 2) * 10, "two halves, two evaluations a Heun step"
    with pytest.raises(ValueError, match="either labels or num_samples"):
        sample_flow_digits(model, torch.Generator(), num_steps=1)


def test_the_comparisons_sentences_come_from_its_rows():
    """Means over seeds, the best distance per sampler, the first count that clears the whole bar
    (a confident but one-digit blur does not), the cost at the largest shared count."""
    from types import SimpleNamespace

    from diffusion_lab.experiments import quality
    from diffusion_lab.profiles import QUALITY_BAR
    from diffusion_lab.report import flow_figures

    def row(sampler, n, seed, confident, distance, smallest=0.05):
        return {"sampler": sampler, "evaluations": n, "steps": n, "seed": seed, "confident_fraction": confident,
                "smallest_share": smallest, "frechet_distance": distance, "seconds_per_1000": float(n)}

    def compared(rows):
        return SimpleNamespace(metrics={"rows": rows, "frechet_floor": 10.0, "num_timesteps": 300,
                                        "images_seen": {"ddpm": 1, "flow": 1}})

    rows = [row("ddpm", 1, 0, 1.0, 45.0, smallest=0.0), row("ddpm", 10, 0, 0.5, 40.0), row("ddpm", 10, 1, 0.7, 60.0),
            row("ddpm", 50, 0, 0.9, 30.0), row("euler", 10, 0, 0.8, 20.0), row("euler", 50, 0, 0.75, 60.0)]
    run = compared(rows)
    points = quality.comparison_points(run)
    assert points[("ddpm", 10)].confident_fraction == pytest.approx(0.6)
    assert points[("ddpm", 10)].frechet_distance == pytest.approx(50.0)
    assert points[("ddpm", 10)].frechet_spread == pytest.approx(20.0) and points[("ddpm", 10)].seeds == 2
    text = flow_figures.comparison_findings(run, False, QUALITY_BAR)
    assert "**DDPM, strided**: lowest Fréchet distance 3.0× the real digits', at 50 evaluations per sample; " \
           "it first clears the bar at 50 evaluations." in text, "not at 1: every sample the same digit"
    assert "**flow, Euler**: lowest Fréchet distance 2.0× the real digits', at 10 evaluations per sample; " \
           "it first clears the bar at 10 evaluations." in text
    assert "Heun" not in text, "no sentence about a sampler that was not measured"
    assert "At 50 evaluations per sample, 1,000 samples took: DDPM, strided 50.0 s, flow, Euler 50.0 s." in text
    far = compared([row("euler", 10, 0, 0.8, 60.0)])
    assert "clears the bar at none of the measured counts" in flow_figures.comparison_findings(far, False, QUALITY_BAR)


def test_the_comparison_says_where_each_loss_looks():
    from diffusion_lab.profiles import get_profile
    from diffusion_lab.report.flow_figures import loss_emphasis

    quick, full = get_profile("quick").partb, get_profile("full").partb
    assert loss_emphasis(quick.time_ddpm.to_dict()) == "Min-SNR-5 weights (floor 0.2)"
    assert loss_emphasis(quick.time_flow.to_dict()) == "logit-normal t"
    assert loss_emphasis(full.time_flow.to_dict()) == "uniform t"
    assert loss_emphasis(full.time_ddpm.to_dict()) == "uniform weights"


def test_the_constant_rate_run_is_scored_and_sampled_like_the_scheduled_one(ctx):
    """Its scores and samples take the scheduled model's sampler, budget and noise; it trains on the
    time model's draws, so its first step (same weights, batch and noise) has the same loss."""
    scheduled = partb_training.flow_training(ctx, conditional=False)
    constant = partb_training.constant_lr_flow_training(ctx)
    assert constant.params["recipe"]["lr_schedule"] == "constant"
    first, other = scheduled.load("losses.pt"), constant.load("losses.pt")
    assert first.shape == other.shape and first[0] == other[0] and not torch.equal(first, other)
    scores, constant_scores = partb_flow.flow_scores(ctx, False), partb_flow.constant_lr_scores(ctx)
    assert {k: v for k, v in constant_scores.params.items() if k not in ("training", "noise_of")} == \
        {k: v for k, v in scores.params.items() if k != "training"}
    assert FlowScores.of(constant_scores).row.samples == TINY.showcase.judge_samples
    samples = sampled_epochs(partb_flow.constant_lr_samples(ctx))
    assert sorted(samples) == list(TINY.partb.time_flow.checkpoint_epochs)
    assert all(kept.frames is None for kept in samples.values())


def test_where_the_schedule_changes_nothing_the_constant_rate_run_is_the_scheduled_one(tmp_path, monkeypatch):
    """With a schedule that keeps its rate (an exponential decay of 1) and the same rate, the
    constant-rate run trains to the very bits of the scheduled one, its samples and scores from the
    same noise are the same, and the verdict is level on both measures."""
    import dataclasses

    from diffusion_lab.experiments import partb, quality
    from diffusion_lab.mnist.recipes import with_constant_rate
    from diffusion_lab.runcache import context

    flat = dataclasses.replace(TINY.partb.time_flow, lr_total_decay=1.0)
    book = dataclasses.replace(TINY.partb, time_flow=flat,
                               time_flow_constant_lr=with_constant_rate(flat, flat.learning_rate))
    monkeypatch.setattr(context, "get_profile", lambda name: dataclasses.replace(TINY, partb=book))
    flat_ctx = BuildContext.from_env(profile="tiny", seed=0, cache_dir=tmp_path / "cache", device=torch.device("cpu"))
    scheduled = partb_training.flow_training(flat_ctx, conditional=False)
    constant = partb_training.constant_lr_flow_training(flat_ctx)
    assert constant.key != scheduled.key
    for epoch in TINY.partb.time_flow.checkpoint_epochs:
        mine, theirs = partb_training.trained_state(constant, epoch), partb_training.trained_state(scheduled, epoch)
        assert all(torch.equal(mine[key], theirs[key]) for key in theirs), epoch
    same, other = sampled_epochs(partb_flow.constant_lr_samples(flat_ctx)), sampled_epochs(
        partb_flow.flow_samples(flat_ctx, False))
    assert all(torch.equal(same[epoch].samples, other[epoch].samples) for epoch in other)
    verdict = quality.schedule_verdict(partb_flow.flow_scores(flat_ctx, False), partb_flow.constant_lr_scores(flat_ctx),
                                       partb.judge_reference(flat_ctx))
    assert dataclasses.replace(verdict.constant, wall_time_s=verdict.schedule.wall_time_s) == verdict.schedule
    assert verdict.confident.winner is None and verdict.frechet.winner is None and verdict.winner is None


def test_the_schedule_sentence_says_which_won_and_by_how_much():
    """The page's sentence, from `quality.schedule_verdict` alone: the two readings, the winner and its
    margins; a level measure is named as level; split measures have no winner."""
    from types import SimpleNamespace

    from diffusion_lab.experiments import partb_records as rec
    from diffusion_lab.experiments import quality
    from diffusion_lab.report import flow_figures

    params = {"samples": 1000, "sampler": "euler", "steps": 50, "batch": 500, "guidance_scale": None}
    reference = SimpleNamespace(params={"count": 1000}, metrics=rec.JudgeReference(
        0.99, 2.0, 0.99, 0.98, (0.1,) * 10).to_metrics())
    constant = SimpleNamespace(params={"recipe": {"learning_rate": 2.5e-3, "lr_schedule": "constant"}})

    def scores(confident, distance):
        return SimpleNamespace(params=params, metrics=rec.FlowScores(rec.FlowScoreRow(
            2, confident, (0.1,) * 10, distance, 1.0, 1000)).to_metrics())

    def text(schedule, constant_scores):
        return flow_figures.schedule_text(quality.schedule_verdict(schedule, constant_scores, reference), constant)

    assert text(scores(0.85, 6.0), scores(0.75, 7.5)) == (
        "The constant rate (0.0025) reads 75.0% confident at 3.75× real against the schedule's 85.0% at 3.00×, "
        "so the schedule won by 10.0 points of confident samples and a 1.25× lower Fréchet ratio.")
    assert text(scores(0.80, 7.5), scores(0.81, 6.0)).endswith(
        "so the constant rate won by a 1.25× lower Fréchet ratio, level on confident samples (1.0 point apart, "
        "within two standard errors of the difference: 3.5 points).")
    assert text(scores(0.90, 7.5), scores(0.70, 6.0)).endswith(
        "so neither won outright: the schedule read 20.0 points more confident samples, the constant rate had "
        "a 1.25× lower Fréchet ratio.")
    assert text(scores(0.80, 6.0), scores(0.80, 6.0)).endswith(
        "so neither won: level on confident samples (0.0 points apart, within two standard errors of the "
        "difference: 3.6 points), and level on the Fréchet ratio.")


def test_the_schedule_rows_and_words_come_from_the_runs():
    from diffusion_lab.profiles import get_profile
    from diffusion_lab.report.flow_figures import schedule_words

    quick, full = get_profile("quick").partb, get_profile("full").partb
    assert schedule_words(quick.time_flow.to_dict()) == "one cycle, peak 0.005"
    assert schedule_words(quick.time_flow_constant_lr.to_dict()) == "constant 0.0025"
    assert schedule_words(full.time_flow.to_dict()) == "exponential, 0.01 decayed to 0.1 of it"
