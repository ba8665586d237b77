"""Figures, tables and computed sentences of the flow-matching pages and of the DDPM-vs-flow
comparison: laying out results, never computing them."""

from __future__ import annotations

import io

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from diffusion_lab.experiments import partb_models, quality  # noqa: E402
from diffusion_lab.experiments.partb_records import (  # noqa: E402
    FlowScores,
    PureNoiseResults,
    TrainingSummary,
    sampled_epochs,
)
from diffusion_lab.profiles import COURSE_GUIDANCE, QualityBar  # noqa: E402
from diffusion_lab.report.figures import gif_bytes, image_grid, line_plot  # noqa: E402
from diffusion_lab.report.page import Page  # noqa: E402
from diffusion_lab.report.partb_figures import (  # noqa: E402
    MNIST_TRAINING_DIGITS,
    animation_tiles,
    fmt,
    percent,
    rarest_cell,
    ratio_cell,
    real_digits_label,
    short_checkpoint_label,
    verdicts_text,
    worst_digit,
)
from diffusion_lab.runcache.runs import RunRecord  # noqa: E402

SAMPLER_WORDS = {"ddpm": "DDPM, strided", "euler": "flow, Euler", "heun": "flow, Heun"}
SAMPLER_NAMES = {"euler": "Euler", "heun": "Heun"}


# --- denoising pure noise ----------------------------------------------------------------------


def pure_noise_grids(training: RunRecord, results: RunRecord) -> tuple[bytes, bytes]:
    """(the pure-noise inputs, shown over [-2, 2]; the outputs of each kept checkpoint for them
    and the mean training digit, over [0, 1])."""
    stored = results.load("results.pt")
    rows = [list(stored["inputs"])]
    titles = ["input z ~ N(0, I)"]
    for epoch in partb_models.checkpoint_epochs(training):
        rows.append(list(stored["outputs"][str(epoch)]))
        titles.append(f"output,\n{short_checkpoint_label(training, epoch)}")
    rows.append([stored["mean_digit"][0]])
    titles.append("mean training\ndigit")
    # the inputs shown over [-2, 2] (about 95% of N(0, 1)), everything else over [0, 1]
    inputs = image_grid(rows[:1], row_titles=titles[:1], value_range=(-2.0, 2.0), cell_inches=0.8)
    return inputs, image_grid(rows[1:], row_titles=titles[1:], cell_inches=0.8)


def pure_noise_text(training: RunRecord, results: RunRecord) -> str:
    """What the outputs are close to, in numbers: their RMS pixel distance to the mean training
    digit and to their own mean, at the last kept checkpoint."""
    last = partb_models.checkpoint_epochs(training)[-1]
    distance = PureNoiseResults.of(results).distances[last]
    return (f"After {partb_models.checkpoint_label(training, last)} the outputs lie at a root-mean-square pixel "
            f"distance of {distance.to_mean_digit:.3f} from the mean training digit and of "
            f"{distance.between_outputs:.3f} from their own mean (pixels range over [0, 1]).")


# --- flow-matching samples and scores ----------------------------------------------------------


def ode_path_gif(page: Page, training: RunRecord, samples: RunRecord, n_cols: int, what: str,
                 per_class: int | None = None) -> None:
    """An animation of the last checkpoint's samples along the ODE, from noise at t = 0 to t = 1."""
    final = partb_models.checkpoint_epochs(training)[-1]
    kept = sampled_epochs(samples)[final]
    if kept.frames is None:
        return
    steps, total = kept.frame_steps, samples.params["steps"]
    page.figure(
        gif_bytes(animation_tiles(kept.frames, n_cols, per_class), scale=3),
        f"{what} along the ODE, from pure noise at t = 0 to t = 1: one frame every {steps[1] - steps[0]} of the "
        f"{total} {SAMPLER_NAMES[samples.params['sampler']]} steps "
        f"({partb_models.checkpoint_label(training, final)}).",
        [training, samples], pixelated=True,
    )


FLOW_SCORE_HEADERS = ["samples of", "confident ≥ 0.9", "smallest digit share", "Fréchet distance", "× real digits'",
                      "sampler"]
CLASS_FLOW_SCORE_HEADERS = ["samples of", "judge accuracy", "worst digit (accuracy)", "confident ≥ 0.9",
                            "Fréchet distance", "× real digits'", "sampler"]


def sampler_text(run: RunRecord) -> str:
    """"Euler, 50 steps" from a run's parameters."""
    return f"{SAMPLER_NAMES[run.params['sampler']]}, {run.params['steps']} steps"


def flow_score_rows(scores: RunRecord, reference: RunRecord, training: RunRecord) -> list[list[str]]:
    """The judge's reading of the last checkpoint's samples, then of the same count of real digits."""
    row, real = FlowScores.of(scores).row, quality.real_digits(reference)
    label = short_checkpoint_label(training, row.epoch)
    ratio = ratio_cell(quality.frechet_ratio(row.frechet_distance, real.frechet_distance))
    if row.judge_accuracy is not None:
        return [[label, percent(row.judge_accuracy), worst_digit(row.per_class_accuracy),
                 percent(row.confident_fraction), fmt(row.frechet_distance), ratio, sampler_text(scores)],
                [real_digits_label(real), percent(real.accuracy), "–", percent(real.confident_fraction),
                 fmt(real.frechet_distance), ratio_cell(real.frechet_ratio), "–"]]
    return [[label, percent(row.confident_fraction), rarest_cell(row.class_shares), fmt(row.frechet_distance),
             ratio, sampler_text(scores)],
            [real_digits_label(real), percent(real.confident_fraction), rarest_cell(real.class_shares),
             fmt(real.frechet_distance), ratio_cell(real.frechet_ratio), "–"]]


def flow_bar_text(scores: RunRecord, reference: RunRecord, bar: QualityBar) -> str:
    """Each part of the project's bar, met or not, for the scored samples (`quality.flow_verdicts`;
    class model: accuracy at the course's g; time model: confident fraction, rarest digit, Fréchet distance)."""
    verdicts = quality.flow_verdicts(scores, reference, bar)
    met = quality.all_met(verdicts)
    return f"The project's bar for this model is **{'met' if met else 'not met'}**: {verdicts_text(verdicts)}."


# --- the schedule against a constant learning rate -------------------------------------------------


def schedule_words(recipe: dict) -> str:
    """A training run's learning rate in a few words, from its recipe: "one cycle, peak 0.005",
    "exponential, 0.01 decayed to 0.1 of it", "constant 0.0025"."""
    rate = f"{recipe['learning_rate']:g}"
    if recipe["lr_schedule"] == "constant":
        return f"constant {rate}"
    if recipe["lr_schedule"] == "one_cycle":
        return f"one cycle, peak {rate}"
    return f"exponential, {rate} decayed to {recipe['lr_total_decay']:g} of it"


SCHEDULE_HEADERS = ["learning rate", "confident ≥ 0.9", "smallest digit share", "Fréchet distance", "× real digits'",
                    "sampler"]


def schedule_rows(verdict: quality.ScheduleVerdict, schedule: RunRecord, constant: RunRecord,
                  scores: RunRecord, reference: RunRecord) -> list[list[str]]:
    """The scheduled run's row, the constant rate's (same samples, sampler and noise), then the real digits'."""
    real = quality.real_digits(reference)
    rows = [[schedule_words(run.params["recipe"]), percent(row.confident_fraction), rarest_cell(row.class_shares),
             fmt(row.frechet_distance), ratio_cell(ratio), sampler_text(scores)]
            for run, row, ratio in ((schedule, verdict.schedule, verdict.schedule_ratio),
                                    (constant, verdict.constant, verdict.constant_ratio))]
    return rows + [[real_digits_label(real), percent(real.confident_fraction), rarest_cell(real.class_shares),
                    fmt(real.frechet_distance), ratio_cell(real.frechet_ratio), "–"]]


_SIDE = {quality.SCHEDULE: "the schedule", quality.CONSTANT: "the constant rate"}


def _points(fraction: float) -> str:
    return f"{100 * fraction:.1f} point" + ("" if round(100 * fraction, 1) == 1.0 else "s")


def schedule_text(verdict: quality.ScheduleVerdict, constant: RunRecord) -> str:
    """One sentence from `quality.schedule_verdict`: both runs' confident share and Fréchet ratio, and
    which won by how much (or that neither did)."""
    confident, frechet = verdict.confident, verdict.frechet
    opening = (f"The constant rate ({constant.params['recipe']['learning_rate']:g}) reads "
               f"{percent(verdict.constant.confident_fraction)} confident at {verdict.constant_ratio:.2f}× real against "
               f"the schedule's {percent(verdict.schedule.confident_fraction)} at {verdict.schedule_ratio:.2f}×, ")
    level_confident = (f"level on confident samples ({_points(confident.margin)} apart, within two standard errors "
                       f"of the difference: {_points(confident.noise)})")
    more_confident = f"{_points(confident.margin)} more confident samples"
    lower_ratio = f"a {frechet.margin:.2f}× lower Fréchet ratio"
    winner = verdict.winner
    if winner is not None:
        by_confident = f"{_points(confident.margin)} of confident samples"
        won = [part for part, duel in ((by_confident, confident), (lower_ratio, frechet)) if duel.winner == winner]
        level = ([level_confident] if confident.winner is None else []) + \
            (["level on the Fréchet ratio"] if frechet.winner is None else [])
        return opening + f"so {_SIDE[winner]} won by " + " and ".join(won) + "".join(f", {part}" for part in level) + "."
    if confident.winner is not None and frechet.winner is not None:
        return (opening + f"so neither won outright: {_SIDE[confident.winner]} read {more_confident}, "
                f"{_SIDE[frechet.winner]} had {lower_ratio}.")
    return opening + f"so neither won: {level_confident}, and level on the Fréchet ratio."


def schedule_grid(schedule: RunRecord, schedule_samples: RunRecord, constant_samples: RunRecord,
                  n_cols: int = 10) -> bytes:
    """At each kept checkpoint, the first `n_cols` samples of the scheduled run above those of the
    constant rate, drawn from the same noise."""
    mine, theirs = sampled_epochs(schedule_samples), sampled_epochs(constant_samples)
    rows, titles = [], []
    for epoch in partb_models.checkpoint_epochs(schedule):
        label = short_checkpoint_label(schedule, epoch)
        for name, stored in (("schedule", mine), ("constant rate", theirs)):
            rows.append(list(stored[epoch].samples[:n_cols].clamp(0, 1)))
            titles.append(f"{name},\n{label}")
    return image_grid(rows, row_titles=titles, cell_inches=0.6)


def loss_pair_plot(schedule: RunRecord, constant: RunRecord) -> bytes:
    """Both runs' training losses per step (log scale), each with a running mean."""
    per_epoch = TrainingSummary.of(schedule).steps_per_epoch
    return line_plot({f"{schedule_words(run.params['recipe'])}": run.load("losses.pt").tolist()
                      for run in (schedule, constant)},
                     "training step", "MSE loss (log scale)", log_y=True, smooth=max(1, min(50, per_epoch // 4)))


# --- the comparison ------------------------------------------------------------------------------


def started_from(run: RunRecord, time_run: RunRecord) -> list[RunRecord]:
    """[time_run] where the class model `run` was warm-started from it, else []."""
    return [time_run] if run.params.get("warm_start") == time_run.key else []


def total_images_seen(run: RunRecord, chain: list[RunRecord]) -> int:
    """Images a model has seen, counting the model it was warm-started from (`chain`: that run)."""
    return TrainingSummary.of(run).num_images_seen + sum(TrainingSummary.of(start).num_images_seen for start in chain)


COMPUTE_HEADERS = ["model", "width D", "batch", "learning-rate schedule", "precision", "training digits",
                   "images seen (with its start)", "where the loss looks", "training wall time (s)"]


def loss_emphasis(recipe: dict) -> str:
    """Which noise levels a recipe's loss weighs most, in words: a DDPM's Min-SNR weights or a flow
    model's distribution of training times; the course's uniform choice otherwise."""
    if recipe.get("min_snr_gamma") is not None:
        return f"Min-SNR-{recipe['min_snr_gamma']:g} weights (floor {recipe.get('min_snr_floor', 0.0):g})"
    if recipe.get("time_distribution", "uniform") != "uniform":
        return recipe["time_distribution"].replace("_", "-") + " t"
    return "uniform t" if "time_distribution" in recipe else "uniform weights"


def compute_rows(pairs: dict[str, tuple[RunRecord, list[RunRecord]]]) -> list[list[str]]:
    """One row per trained model: what makes the compute equal, read from the training runs."""
    rows = []
    for label, (run, chain) in pairs.items():
        recipe, trained = run.params["recipe"], TrainingSummary.of(run)
        wall = trained.wall_time_s + sum(TrainingSummary.of(start).wall_time_s for start in chain)
        rows.append([label, str(recipe["num_hiddens"]), str(recipe["batch_size"]), recipe["lr_schedule"],
                     trained.precision, f"{recipe['train_subset'] or MNIST_TRAINING_DIGITS:,}",
                     f"{total_images_seen(run, chain):,}", loss_emphasis(recipe), fmt(wall, 1)])
    return rows


def _quality(conditional: bool) -> tuple[str, str]:
    """The attribute of a `quality.ComparisonPoint` a plot and table show, and its words."""
    return ("judge_accuracy", "judge accuracy") if conditional else ("confident_fraction", "confident ≥ 0.9")


def _evaluations(count: int) -> str:
    return f"{count} evaluation" + ("" if count == 1 else "s")


def comparison_plot(run: RunRecord, conditional: bool) -> bytes:
    """Two panels against network evaluations per sample (log scale): the quality measure (class:
    accuracy; time: confident fraction) and the Fréchet distance in units of the real digits'."""
    points = quality.comparison_points(run)
    key, words = _quality(conditional)
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.6))
    for sampler, label in SAMPLER_WORDS.items():
        xs = sorted(n for s, n in points if s == sampler)
        if not xs:
            continue
        axes[0].plot(xs, [100 * getattr(points[(sampler, n)], key) for n in xs], marker="o", label=label)
        axes[1].plot(xs, [points[(sampler, n)].frechet_ratio for n in xs], marker="o", label=label)
    axes[0].set_ylabel(f"{words} (%)")
    axes[1].set_ylabel("Fréchet distance (× real digits')")
    axes[1].set_yscale("log")
    counts = sorted({n for _, n in points})
    axes[1].yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes[1].yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("network evaluations per sample")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return buffer.getvalue()


def comparison_headers(conditional: bool) -> list[str]:
    return (["evaluations / sample", "sampler", "steps", _quality(conditional)[1]]
            + ([] if conditional else ["smallest digit share"])
            + ["Fréchet distance", "× real digits'", "s per 1,000 samples"])


def comparison_rows(run: RunRecord, conditional: bool) -> list[list[str]]:
    """One row per (evaluations, sampler) measured, means over the sampling seeds."""
    points = quality.comparison_points(run)
    key, _ = _quality(conditional)
    rows = []
    for (sampler, evaluations), point in sorted(points.items(), key=lambda item: (item[0][1], list(SAMPLER_WORDS).index(item[0][0]))):
        spread = f" (± {point.frechet_spread / 2:.1f})" if point.seeds > 1 else ""
        rows.append([str(evaluations), SAMPLER_WORDS[sampler], str(point.steps), percent(getattr(point, key))]
                    + ([] if conditional else [percent(point.smallest_share)])
                    + [fmt(point.frechet_distance) + spread, ratio_cell(point.frechet_ratio),
                       fmt(point.seconds_per_1000, 1)])
    return rows


def comparison_grid(run: RunRecord) -> bytes:
    """The first samples of each sampler at each shown evaluation count, one row each."""
    examples = run.load("examples.pt")
    rows, titles = [], []
    for evaluations in run.params["grid"]:
        for sampler, label in SAMPLER_WORDS.items():
            if f"{sampler}/{evaluations}" in examples:
                rows.append(list(examples[f"{sampler}/{evaluations}"].clamp(0, 1)))
                titles.append(f"{label},\n{evaluations} eval.")
    return image_grid(rows, row_titles=titles, cell_inches=0.6)


def bar_words(conditional: bool, bar: QualityBar) -> str:
    if conditional:
        return f"{percent(bar.course_guidance_accuracy)} judge accuracy"
    return (f"{percent(bar.confident)} read with confidence ≥ 0.9, every digit ≥ {percent(bar.smallest_share)}, "
            f"Fréchet distance ≤ {bar.unguided_frechet_ratio:g}× the real digits'")


def comparison_findings(run: RunRecord, conditional: bool, bar: QualityBar) -> str:
    """What the table shows, each sentence from `quality.comparison_findings`: every sampler's lowest
    Fréchet distance and where, the fewest evaluations at which it clears the project's bar
    (`quality.meets_bar`), and what 1,000 samples cost at the largest count all samplers share."""
    found = quality.comparison_findings(run, conditional, bar, tuple(SAMPLER_WORDS))
    sentences = []
    for finding in found.samplers:
        reach = (f"it first clears the bar at {_evaluations(finding.first_met)}" if finding.first_met is not None
                 else "it clears the bar at none of the measured counts")
        sentences.append(f"**{SAMPLER_WORDS[finding.sampler]}**: lowest Fréchet distance {finding.best_ratio:.1f}× "
                         f"the real digits', at {_evaluations(finding.best_evaluations)} per sample; {reach}.")
    if found.shared_evaluations is not None:
        costs = ", ".join(f"{SAMPLER_WORDS[s]} {seconds:.1f} s" for s, seconds in found.seconds_per_1000.items())
        sentences.append(f"At {_evaluations(found.shared_evaluations)} per sample, 1,000 samples took: {costs}.")
    return f"The bar: {bar_words(conditional, bar)}.\n\n" + "\n\n".join(sentences)


def guidance_words(run: RunRecord) -> str:
    g = run.params["guidance_scale"]
    return "" if g is None else f" at g = {g:g}" + (" (the course's)" if g == COURSE_GUIDANCE else "")

