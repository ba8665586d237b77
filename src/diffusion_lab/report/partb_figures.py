"""Figures and tables shared by the Part B pages: laying out results, never computing them."""

from __future__ import annotations

import torch

from diffusion_lab.experiments import partb, partb_models, quality
from diffusion_lab.experiments.partb_records import (
    DenoiserResults,
    DenoiserRow,
    GuidanceSweep,
    TimeScoreRow,
    TimeScores,
    TrainingSummary,
    sampled_epochs,
)
from diffusion_lab.experiments.quality import RealDigits, Verdict, percent
from diffusion_lab.mnist.recipes import DDPMRecipe, DenoiserRecipe, UNetRecipe
from diffusion_lab.profiles import COURSE_GUIDANCE, QualityBar
from diffusion_lab.report.figures import gif_bytes, grouped_bars, image_grid, line_plot, tile
from diffusion_lab.report.page import Page
from diffusion_lab.runcache.runs import RunRecord


MNIST_TRAINING_DIGITS = 60_000
WRITE_UP_GUIDANCE = 0.5  # the write-up's g, where the course uses COURSE_GUIDANCE


def scales_text(scales) -> str:
    """Guidance scales as a reader reads them: (1.0, 1.5, 5.0) -> "1, 1.5 and 5"."""
    names = [f"{scale:g}" for scale in scales]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def guidance_in_sweep_text(scales, course: float = COURSE_GUIDANCE, write_up: float = WRITE_UP_GUIDANCE) -> str:
    """Whether the build's guidance sweep holds the course's g and the write-up's, in one sentence."""
    swept = f"the sweep below (g = {scales_text(scales)})"
    has_course, has_write_up = course in scales, write_up in scales
    if has_course and has_write_up:
        return f"Both are in {swept}."
    if not (has_course or has_write_up):
        return f"Neither is in {swept}."
    kept, missing = (course, write_up) if has_course else (write_up, course)
    return f"{swept[0].upper()}{swept[1:]} has {kept:g} but not {missing:g}."


def fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ordinal(number: int) -> str:
    """`number` as an English ordinal: 1 -> "1st", 2 -> "2nd", 3 -> "3rd", 11 -> "11th", 10 -> "10th"."""
    if number % 100 in (11, 12, 13):
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th')}"


def training_digit_count(recipe: DenoiserRecipe | DDPMRecipe) -> int:
    """How many MNIST training digits a recipe trains on: its subset, or all of them."""
    return recipe.train_subset or MNIST_TRAINING_DIGITS


# The fields in which a class-conditioned recipe may differ from the time-conditioned one and
# still be "trained like it": the class dropout exists only with a class input.
_CONDITIONING_ONLY = {"p_uncond"}
_NOT_TRAINING = {"checkpoint_labels"}  # how checkpoints are named on the pages
_STARTS_FROM = "warm_start"  # said apart: where the weights start, not a setting both runs have
_RECIPE_WORDS = {"num_hiddens": "width D", "batch_size": "batch", "epochs": "epochs", "learning_rate": "learning rate",
                 "checkpoint_epochs": "kept checkpoints", "num_timesteps": "T", "beta1": "β₁", "beta2": "β_T",
                 "lr_total_decay": "total learning-rate decay", "train_subset": "training digits",
                 "precision": "precision", "lr_schedule": "learning-rate schedule", "warmup_fraction": "warm-up share",
                 "ema_decay": "EMA decay", "sample_weights": "sampled weights", "min_snr_gamma": "Min-SNR γ",
                 "min_snr_floor": "Min-SNR floor", "time_distribution": "training times t",
                 "architecture": "UNet"}


def _spelled(value) -> str:
    """10,000 for counts, 0.002 for rates, "none" for an unset option, the text itself otherwise."""
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ", ".join(map(_spelled, value))
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def how_trained_like(recipe: DDPMRecipe, other: DDPMRecipe, other_name: str) -> str:
    """A sentence comparing two DDPM recipes, from their fields: "it is trained exactly like the
    time-conditioned one" only when nothing but the class dropout differs."""
    differences = []
    for field in recipe.__dataclass_fields__:
        if field in _CONDITIONING_ONLY or field in _NOT_TRAINING or field == _STARTS_FROM:
            continue
        words = _RECIPE_WORDS[field]  # a new recipe field needs its words here
        mine, theirs = getattr(recipe, field), getattr(other, field)
        if field == "train_subset":
            mine, theirs = training_digit_count(recipe), training_digit_count(other)
        if mine != theirs:
            differences.append(f"{words} {_spelled(mine)} (the {other_name} one: {_spelled(theirs)})")
    start = (f"it starts from the trained {other_name} model's weights (its class embeddings set to "
             "the identity) rather than a random init, and then " if recipe.warm_start else "it ")
    if not differences:
        return start + f"is trained exactly like the {other_name} one"
    return start + f"is trained like the {other_name} one except for: " + "; ".join(differences)


def optimizer_text(recipe: UNetRecipe) -> str:
    """How a DDPM recipe optimizes, in words, from its fields: the course's Adam with ExponentialLR,
    or this build's additions (one-cycle schedule, EMA, Min-SNR weighting) where the recipe has them."""
    if recipe.lr_schedule == "one_cycle":
        schedule = (f"Adam with a one-cycle learning rate: a linear warm-up from {recipe.learning_rate / 25:.2g} to "
                    f"{recipe.learning_rate:g} over the first {recipe.warmup_fraction:.0%} of the steps, then a cosine "
                    f"decay to {recipe.learning_rate / 25 / 1e4:.1g}, stepped every batch")
    else:
        schedule = (f"Adam at {recipe.learning_rate:g} with ExponentialLR \\(\\gamma = "
                    f"{recipe.lr_total_decay:g}^{{1/{recipe.epochs}}}\\) per epoch")
    extras = []
    if getattr(recipe, "min_snr_gamma", None) is not None:  # a DDPM option; flow-matching recipes lack it
        floor = f", at least {recipe.min_snr_floor:g}" if recipe.min_snr_floor else ""
        extras.append(f"each sample's error weighted by Min-SNR-{recipe.min_snr_gamma:g} "
                      f"(\\(\\min(\\mathrm{{SNR}}_t, {recipe.min_snr_gamma:g}) / \\mathrm{{SNR}}_t\\){floor}, "
                      "so the nearly clean timesteps do not dominate)")
    if recipe.ema_decay is not None:
        used = "the figures sample the average" if recipe.sample_weights == "ema" else "the figures sample the trained weights"
        extras.append(f"an exponential moving average of the weights (decay {recipe.ema_decay:g}, warmed up as "
                      f"\\(\\min(d, (1+k)/(10+k))\\)) kept beside them; {used}")
    return schedule + "".join(f"; {extra}" for extra in extras)


# --- checkpoints ---------------------------------------------------------------------------------


def last_checkpoint_label(run: RunRecord) -> str:
    """The label of a training run's last kept checkpoint, "epoch 2 of 2 (stands in for epoch 5 of 5)"."""
    return partb_models.checkpoint_label(run, partb_models.checkpoint_epochs(run)[-1])


def short_checkpoint_label(run: RunRecord, epoch: int) -> str:
    """A checkpoint's label without its parenthesized note: "epoch 2 of 2 (stands in for ...)" -> "epoch 2 of 2"."""
    return partb_models.checkpoint_label(run, epoch).split(" (")[0]


def checkpoint_labels_text(run: RunRecord) -> str:
    """Every kept checkpoint's label, in epoch order, separated by semicolons."""
    return "; ".join(partb_models.checkpoint_label(run, epoch) for epoch in partb_models.checkpoint_epochs(run))


# --- B1: the single-step denoiser ----------------------------------------------------------------


def denoising_grid(training: RunRecord, results: RunRecord, sigma: float) -> bytes:
    """Test digits clean, noised at `sigma`, then denoised by each kept checkpoint: one row each."""
    stored = results.load("results.pt")
    rows = [list(stored["shown_clean"]), list(stored["shown_noisy"])]
    row_titles = ["clean", f"σ = {sigma}"]
    for epoch in partb_models.checkpoint_epochs(training):
        rows.append(list(stored["per_epoch"][str(epoch)]))
        row_titles.append(f"denoised,\n{short_checkpoint_label(training, epoch)}")
    return image_grid(rows, row_titles=row_titles, cell_inches=0.8)


DENOISER_TABLE_HEADERS = ["σ", "noisy PSNR (dB)", "denoiser PSNR (dB)", "denoiser SSIM", "best blur (kernel, σ_blur)",
                          "blur PSNR (dB)", "blur SSIM"]


def best_blur_cell(row: DenoiserRow) -> str:
    """The best blur's "kernel, σ_blur" of a denoiser-table row, or "–" where no blur was chosen."""
    return f"{row.blur_kernel}, {row.blur_sigma}" if row.blur_kernel else "–"


def denoiser_table_rows(results: RunRecord) -> list[list]:
    """Per σ: PSNR of the noisy digits, PSNR and SSIM of the denoiser's and of the best blur's output."""
    return [[row.sigma, fmt(row.noisy_psnr), fmt(row.denoiser_psnr), fmt(row.denoiser_ssim, 3),
             best_blur_cell(row), fmt(row.blur_psnr), fmt(row.blur_ssim, 3)]
            for row in DenoiserResults.of(results).table]


# --- B3: the guidance sweep ----------------------------------------------------------------------


def guidance_label(scale: float) -> str:
    """A guidance scale for the sweep table, marking the write-up's and the course's: "0.5 (write-up)"."""
    return (f"{scale:g}" + (" (write-up)" if scale == WRITE_UP_GUIDANCE else "")
            + (" (course)" if scale == COURSE_GUIDANCE else ""))


def worst_digit(per_class_accuracy) -> str:
    """The digit the judge gets right least often and its accuracy, "4 (60%)"; the lowest digit on a tie."""
    digit, accuracy = quality.rarest_digit(per_class_accuracy)
    return f"{digit} ({100 * accuracy:.0f}%)"


def rarest_cell(shares) -> str:
    """The digit read least often and its share, "3.0% (digit 1)"; the lowest digit on a tie."""
    digit, share = quality.rarest_digit(shares)
    return f"{percent(share)} (digit {digit})"


def ratio_cell(ratio: float) -> str:
    """A Fréchet ratio as the "× real digits'" columns show it: "6.2×"."""
    return f"{ratio:.1f}×"


def real_digits_label(real: RealDigits) -> str:
    return f"real training digits ({real.count:,})"


def verdict_word(met: bool) -> str:
    return "**met**" if met else "**not met**"


def verdicts_text(verdicts: tuple[Verdict, ...]) -> str:
    """Each part of a bar with its verdict: "75.0% read with confidence ≥ 0.9 (bar: 70.0%), met; ..."."""
    return "; ".join(f"{verdict.reason}, {'met' if verdict.met else '**not met**'}" for verdict in verdicts)


GUIDANCE_SWEEP_HEADERS = ["guidance g", "judge accuracy", "worst digit (accuracy)", "confident ≥ 0.9",
                          "Fréchet distance", "× real digits'", "images/s"]


def guidance_sweep_rows(sweep: RunRecord, reference: RunRecord) -> list[list[str]]:
    """One row per guidance scale of the sweep, then the real digits': judge accuracy, worst digit,
    confident fraction, Fréchet distance and its ratio to the real digits', sampling throughput."""
    floor = quality.floor_of(reference)
    rows = [[guidance_label(row.guidance_scale), percent(row.judge_accuracy), worst_digit(row.per_class_accuracy),
             percent(row.confident_fraction), fmt(row.frechet_distance),
             ratio_cell(quality.frechet_ratio(row.frechet_distance, floor)), f"{row.images_per_s:,.0f}"]
            for row in GuidanceSweep.of(sweep).rows]
    real = quality.real_digits(reference)
    rows.append([real_digits_label(real), percent(real.accuracy), "–", percent(real.confident_fraction),
                 fmt(real.frechet_distance), ratio_cell(real.frechet_ratio), "–"])
    return rows


def guided_bar_text(sweep: RunRecord, reference: RunRecord, bar: QualityBar) -> str:
    """Whether the class-conditioned model clears the bar (`quality.guided_judgement`): some g with
    accuracy >= guided_accuracy at a distance <= guided_frechet_ratio x real, and the course's g."""
    judged = quality.guided_judgement(sweep, reference, bar)
    if judged.met:
        first = (f"{verdict_word(True)} at g = {judged.best.guidance_scale:g}: {percent(judged.best.judge_accuracy)} accuracy at "
                 f"{judged.best_ratio:.1f}× the real digits' distance")
    else:
        first = (f"{verdict_word(False)}: no guidance scale of the sweep reaches {percent(bar.guided_accuracy)} accuracy within "
                 f"{bar.guided_frechet_ratio:g}× the real digits' distance")
        if judged.closest is not None:
            first += (f" (the most accurate within it: g = {judged.closest.guidance_scale:g}, "
                      f"{percent(judged.closest.judge_accuracy)} at {judged.closest_ratio:.1f}×)")
    if judged.course_verdict is None:
        second = f"the sweep has no g = {COURSE_GUIDANCE:g}"
    else:
        second = f"{verdict_word(judged.course_verdict.met)}: {judged.course_verdict.reason}"
    return (f"The bar for this model, {percent(bar.guided_accuracy)} accuracy at some g within "
            f"{bar.guided_frechet_ratio:g}× the real digits' distance: {first}. "
            f"At least {percent(bar.course_guidance_accuracy)} at the course's g = {COURSE_GUIDANCE:g}: {second}.")


# --- B2: the judge reads unconditional samples -----------------------------------------------------


TIME_SCORE_HEADERS = ["checkpoint", "weights", "sampler", "confident ≥ 0.9", "smallest digit share",
                      "Fréchet distance", "× real digits'"]
WEIGHT_WORDS = {"raw": "trained", "ema": "EMA"}


def sampler_words(row: TimeScoreRow) -> str:
    """How a scores row was sampled: "100 steps", "50 steps + 49 Langevin (r = 0.16)" or
    "100 steps, matched start"."""
    words = f"{row.steps} steps"
    if row.corrector_snr is not None:
        words += f" + {row.evaluations - row.steps} Langevin (r = {row.corrector_snr:g})"
    if row.start == "matched":
        words += ", matched start"
    return words


def _row_label(row: TimeScoreRow, training: RunRecord, with_sampler: bool) -> str:
    label = f"{short_checkpoint_label(training, row.epoch)}, {WEIGHT_WORDS[row.weights]}"
    return f"{label}, {sampler_words(row)}" if with_sampler else label


def _several_samplers(scores: TimeScores) -> bool:
    return len({sampler_words(row) for row in scores.rows}) > 1


def time_score_rows(scores: RunRecord, reference: RunRecord, training: RunRecord) -> list[list[str]]:
    """One row per (checkpoint, weights, sampler) of the scores run, then the real digits' row."""
    floor = quality.floor_of(reference)
    rows = [[short_checkpoint_label(training, row.epoch), WEIGHT_WORDS[row.weights], sampler_words(row),
             percent(row.confident_fraction), rarest_cell(row.class_shares), fmt(row.frechet_distance),
             ratio_cell(quality.frechet_ratio(row.frechet_distance, floor))]
            for row in TimeScores.of(scores).rows]
    real = quality.real_digits(reference)
    rows.append([real_digits_label(real), "–", "–", percent(real.confident_fraction), rarest_cell(real.class_shares),
                 fmt(real.frechet_distance), ratio_cell(real.frechet_ratio)])
    return rows


def scores_sampler_text(scores: RunRecord, num_timesteps: int) -> str:
    """Which samplers drew the scored samples (`partb.scores_samplers`), and the CLI calls that draw
    the same way."""
    steps = scores.params["steps"]
    if steps is None:
        text = f"Part B's sampler on all {num_timesteps} steps (what `sample-digits --model time` runs by default)"
    else:
        text = (f"Part A's strided loop on {steps} of the {num_timesteps} steps, posterior variance "
                f"(`sample-digits --model time --steps {steps}` samples the same way)")
    steps_option = "" if steps is None else f" --steps {steps}"
    added = []
    for how in partb.scores_samplers(scores, num_timesteps)[1:]:
        if how.corrector is not None:
            snr = how.corrector.snr
            added.append(f"with half as many steps, each followed by a Langevin corrector step at signal-to-noise "
                         f"ratio r = {snr:g} (Song et al. 2021's predictor-corrector sampler), which costs about as "
                         f"many network evaluations (`sample-digits --model time --steps {how.steps} "
                         f"--corrector-snr {snr:g}`)")
        if how.start == "matched":
            added.append(f"from the matched start described above, the same noise and the same steps "
                         f"(`sample-digits --model time{steps_option} --start matched`)")
    return "; ".join([text, *(f"and {words}" for words in added)])


def matched_start_text(scores: RunRecord, reference: RunRecord, training: RunRecord) -> str:
    """Why the scores also sample from the matched start, and what it changed at the last checkpoint
    (the same noise and steps from N(0, I) against from the matched start); "" where they do not."""
    effects = quality.matched_start_effects(scores, reference, training)
    if not effects:
        return ""
    abar = partb_models.final_alpha_bar(training)
    text = (f"**The matched start.** This schedule ends at \\(\\bar\\alpha_T = {abar:.3f}\\): a training "
            f"digit noised to \\(x_T\\) still holds \\(\\sqrt{{\\bar\\alpha_T}}\\) = {100 * abar ** 0.5:.0f}% "
            "of it, and over the training digits these \\(x_T\\) have mean \\(\\sqrt{\\bar\\alpha_T}\\,\\mu\\) and "
            "covariance \\(\\bar\\alpha_T \\Sigma + (1 - \\bar\\alpha_T) I\\) (\\(\\mu, \\Sigma\\): the "
            "digits' mean and covariance), while the loop starts from \\(\\mathcal{N}(0, I)\\). The matched "
            "start draws \\(x_T\\) from the Gaussian with those two moments instead, made from the same "
            "noise (`matched_start.MatchedStart`); flow matching has no such gap, its \\(t = 0\\) is pure noise.")
    for effect in effects:
        if effect.twin is not None:
            text += (f" With {sampler_words(effect.twin)} it moves the Fréchet distance from "
                     f"{ratio_cell(effect.twin_ratio)} to {ratio_cell(effect.matched_ratio)} the real digits' and the "
                     f"confident share from {percent(effect.twin.confident_fraction)} to "
                     f"{percent(effect.matched.confident_fraction)}.")
    return text


def scored_samples_figure(page: Page, scores: RunRecord, training: RunRecord) -> None:
    """The first samples of every sampler the last checkpoint was scored with, one row each (the
    weights the figures sample); a column starts from one noise draw in every row. Nothing where a
    single sampler scored it: there is nothing to set beside its samples."""
    rows = TimeScores.of(scores).rows
    last = quality.final_score_rows(TimeScores.of(scores), training)
    if len(last) < 2:
        return
    stored = scores.load("shown_samples.pt")
    indices = [rows.index(row) for row in last]
    page.figure(
        image_grid([list(stored[i].clamp(0, 1)) for i in indices], row_titles=[sampler_words(row) for row in last],
                   cell_inches=0.7),
        f"The first {stored.shape[1]} of the samples each sampler drew for the table after "
        f"{last_checkpoint_label(training)}. Each column starts from the same draw of noise, and rows with the "
        "same steps share every later draw too, so a column shows what the sampler alone changes.",
        [training, scores],
    )


def scores_noise_text(training: RunRecord) -> str:
    """Said only where a run kept both kinds of weights: their rows share their sampling noise."""
    if len(partb_models.weight_kinds(training)) < 2:
        return ""
    return " The trained weights and their average are sampled from the same noise, so their rows differ by the weights alone."


def unguided_bar_text(scores: RunRecord, reference: RunRecord, training: RunRecord, bar: QualityBar) -> str:
    """Each part of the bar for unconditional samples, met or not, for the weights the figures show,
    one paragraph per sampler that scored them."""
    weights = WEIGHT_WORDS[partb_models.sampled_weights(training)]
    several = _several_samplers(TimeScores.of(scores))
    paragraphs = []
    for judged in quality.unguided_judgements(scores, reference, training, bar):
        sampler = f", sampled with {sampler_words(judged.row)}" if several else ""
        paragraphs.append(f"The bar for unconditional samples is **{'met' if judged.met else 'not met'}** by the "
                          f"{weights} weights after {last_checkpoint_label(training)}{sampler}: "
                          f"{verdicts_text(judged.verdicts)}.")
    return "\n\n".join(paragraphs)


def class_share_chart(scores: RunRecord, reference: RunRecord, training: RunRecord, bar: QualityBar) -> bytes:
    """The share of each digit the judge reads, per (checkpoint, weights, sampler), beside the real digits'."""
    rows = TimeScores.of(scores).rows
    several = _several_samplers(TimeScores.of(scores))
    series = {_row_label(row, training, several): list(row.class_shares) for row in rows}
    series["real digits"] = list(quality.real_digits(reference).class_shares)
    return grouped_bars(series, [str(d) for d in range(10)], "digit the judge reads", "share of samples",
                        reference_line=(bar.smallest_share, f"bar: every digit ≥ {percent(bar.smallest_share)}"))


def loss_curve(page: Page, run: RunRecord, caption: str) -> None:
    losses = run.load("losses.pt").tolist()
    per_epoch = TrainingSummary.of(run).steps_per_epoch
    window = max(1, min(50, per_epoch // 4))
    page.figure(
        line_plot({"loss per step": losses}, "training step", "MSE loss (log scale)", log_y=True, smooth=window),
        f"{caption} One point per optimizer step ({per_epoch} steps per epoch); the dark line is a "
        f"running mean over {window} steps.",
        run,
    )


def training_cost_rows(runs: dict[str, RunRecord]) -> list[list[str]]:
    rows = []
    for label, run in runs.items():
        m = TrainingSummary.of(run)
        rows.append([
            label, f"{m.num_parameters:,}", m.precision, run.device, fmt(m.wall_time_s, 1),
            f"{m.images_per_s:,.0f}", f"{m.num_images_seen:,}", fmt(m.final_epoch_loss, 4),
        ])
    return rows


TRAINING_COST_HEADERS = ["model", "parameters", "precision", "device", "wall time (s)", "images/s",
                         "images seen", "last-epoch loss"]


def grid_rows(images: torch.Tensor, n_cols: int, per_class: int | None = None) -> list[list[torch.Tensor]]:
    """Rows of n_cols images; with per_class (images ordered 0,0,..,1,1,..) one column per class."""
    if per_class:
        return [[images[digit * per_class + r] for digit in range(images.shape[0] // per_class)] for r in range(per_class)]
    return [list(images[i : i + n_cols]) for i in range(0, images.shape[0], n_cols)]


def per_class_columns(frames: torch.Tensor, per_class: int | None, n_cols: int) -> tuple[torch.Tensor, int]:
    """Animation frames (F, N, 1, 28, 28) of images ordered 0,0,..,1,1,.. reordered so that each
    tile has one column per class, as in the still figures, and the tiles' column count; as given
    without per_class."""
    if not per_class:
        return frames, n_cols
    classes = frames.shape[1] // per_class
    order = torch.tensor([d * per_class + r for r in range(per_class) for d in range(classes)])
    return frames[:, order], classes


def animation_tiles(frames: torch.Tensor, n_cols: int, per_class: int | None) -> list[torch.Tensor]:
    """One tiled image per frame, clipped to [0, 1], a column per class where `per_class` is given."""
    frames, n_cols = per_class_columns(frames, per_class, n_cols)
    return [tile(frame.clamp(0, 1), n_cols) for frame in frames]


def samples_per_epoch(page: Page, training: RunRecord, samples: RunRecord, n_cols: int, what: str,
                      per_class: int | None = None) -> None:
    stored = sampled_epochs(samples)
    for epoch in partb_models.checkpoint_epochs(training):
        images = stored[epoch].samples
        page.figure(
            image_grid(grid_rows(images, n_cols, per_class), cell_inches=0.7,
                       col_titles=[str(d) for d in range(10)] if per_class else None),
            f"{what} after {partb_models.checkpoint_label(training, epoch)}.",
            [training, samples],
        )


def reverse_process_gif(page: Page, training: RunRecord, samples: RunRecord, n_cols: int, what: str,
                        per_class: int | None = None) -> None:
    final = partb_models.checkpoint_epochs(training)[-1]
    kept = sampled_epochs(samples)[final]
    if kept.frames is None:
        return
    timesteps = kept.frame_steps
    page.figure(
        gif_bytes(animation_tiles(kept.frames, n_cols, per_class), scale=3),
        f"The reverse process of {what}, from pure noise at t = {timesteps[0]} to t = 0, one frame every "
        f"{timesteps[0] - timesteps[1]} steps ({partb_models.checkpoint_label(training, final)}).",
        [training, samples],
        pixelated=True,
    )
