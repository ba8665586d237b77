"""Figures and tables shared by the Part B pages: laying out results, never computing them."""

from __future__ import annotations

import torch

from diffusion_lab.experiments import partb_models
from diffusion_lab.experiments.partb_sampling import score_samplers
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
                 "min_snr_floor": "Min-SNR floor", "time_distribution": "training times t"}


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


def best_blur_cell(row: dict) -> str:
    """The best blur's "kernel, σ_blur" of a denoiser-table row, or "–" where no blur was chosen."""
    return f"{row['blur_kernel']}, {row['blur_sigma']}" if row["blur_kernel"] else "–"


def denoiser_table_rows(results: RunRecord) -> list[list]:
    """Per σ: PSNR of the noisy digits, PSNR and SSIM of the denoiser's and of the best blur's output."""
    return [[row["sigma"], fmt(row["noisy_psnr"]), fmt(row["denoiser_psnr"]), fmt(row["denoiser_ssim"], 3),
             best_blur_cell(row), fmt(row["blur_psnr"]), fmt(row["blur_ssim"], 3)]
            for row in results.metrics["table"]]


# --- B3: the guidance sweep ----------------------------------------------------------------------


def guidance_label(scale: float) -> str:
    """A guidance scale for the sweep table, marking the write-up's and the course's: "0.5 (write-up)"."""
    return (f"{scale:g}" + (" (write-up)" if scale == WRITE_UP_GUIDANCE else "")
            + (" (course)" if scale == COURSE_GUIDANCE else ""))


def worst_digit(per_class_accuracy: list[float]) -> str:
    """The digit the judge gets right least often and its accuracy, "4 (60%)"; the lowest digit on a tie."""
    digit = min(range(len(per_class_accuracy)), key=per_class_accuracy.__getitem__)
    return f"{digit} ({100 * per_class_accuracy[digit]:.0f}%)"


GUIDANCE_SWEEP_HEADERS = ["guidance g", "judge accuracy", "worst digit (accuracy)", "confident ≥ 0.9",
                          "Fréchet distance", "× real digits'", "images/s"]


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def frechet_ratio(distance: float, reference: RunRecord) -> float:
    """A Fréchet distance in units of the real digits' (the `reference` run's floor, same count)."""
    return distance / reference.metrics["frechet_floor"]


def guidance_sweep_rows(sweep: RunRecord, reference: RunRecord) -> list[list[str]]:
    """One row per guidance scale of the sweep, then the real digits': judge accuracy, worst digit,
    confident fraction, Fréchet distance and its ratio to the real digits', sampling throughput."""
    rows = [[guidance_label(row["guidance_scale"]), percent(row["judge_accuracy"]),
             worst_digit(row["per_class_accuracy"]), percent(row["confident_fraction"]),
             fmt(row["frechet_distance"]), f"{frechet_ratio(row['frechet_distance'], reference):.1f}×",
             f"{row['images_per_s']:,.0f}"]
            for row in sweep.metrics["rows"]]
    real = reference.metrics
    rows.append([f"real training digits ({reference.params['count']:,})", percent(real["train_accuracy_of_pick"]),
                 "–", percent(real["confident_fraction"]), fmt(real["frechet_floor"]), "1.0×", "–"])
    return rows


def guided_bar_text(sweep: RunRecord, reference: RunRecord, bar: QualityBar) -> str:
    """Whether the class-conditioned model clears the bar, from the sweep's own rows: some g with
    accuracy >= guided_accuracy at a distance <= guided_frechet_ratio x real, and the course's g."""
    rows = sweep.metrics["rows"]
    good = [row for row in rows if row["judge_accuracy"] >= bar.guided_accuracy
            and frechet_ratio(row["frechet_distance"], reference) <= bar.guided_frechet_ratio]
    course = next((row for row in rows if row["guidance_scale"] == COURSE_GUIDANCE), None)
    if good:
        best = min(good, key=lambda row: row["frechet_distance"])
        first = (f"**met** at g = {best['guidance_scale']:g}: {percent(best['judge_accuracy'])} accuracy at "
                 f"{frechet_ratio(best['frechet_distance'], reference):.1f}× the real digits' distance")
    else:
        first = (f"**not met**: no guidance scale of the sweep reaches {percent(bar.guided_accuracy)} accuracy within "
                 f"{bar.guided_frechet_ratio:g}× the real digits' distance")
        near = [row for row in rows if frechet_ratio(row["frechet_distance"], reference) <= bar.guided_frechet_ratio]
        if near:
            closest = max(near, key=lambda row: row["judge_accuracy"])
            first += (f" (the most accurate within it: g = {closest['guidance_scale']:g}, "
                      f"{percent(closest['judge_accuracy'])} at "
                      f"{frechet_ratio(closest['frechet_distance'], reference):.1f}×)")
    if course is None:
        second = f"the sweep has no g = {COURSE_GUIDANCE:g}"
    else:
        verdict = "**met**" if course["judge_accuracy"] >= bar.course_guidance_accuracy else "**not met**"
        second = f"{verdict}: {percent(course['judge_accuracy'])} accuracy at g = {COURSE_GUIDANCE:g}"
    return (f"The bar for this model, {percent(bar.guided_accuracy)} accuracy at some g within "
            f"{bar.guided_frechet_ratio:g}× the real digits' distance: {first}. "
            f"At least {percent(bar.course_guidance_accuracy)} at the course's g = {COURSE_GUIDANCE:g}: {second}.")


# --- B2: the judge reads unconditional samples -----------------------------------------------------


TIME_SCORE_HEADERS = ["checkpoint", "weights", "sampler", "confident ≥ 0.9", "smallest digit share",
                      "Fréchet distance", "× real digits'"]
WEIGHT_WORDS = {"raw": "trained", "ema": "EMA"}


def sampler_words(row: dict) -> str:
    """How a scores row was sampled: "100 steps", "50 steps + 49 Langevin (r = 0.16)" or
    "100 steps, matched start"."""
    words = f"{row['steps']} steps"
    if row.get("corrector_snr") is not None:
        words += f" + {row['evaluations'] - row['steps']} Langevin (r = {row['corrector_snr']:g})"
    if row.get("start", "noise") == "matched":
        words += ", matched start"
    return words


def _row_label(row: dict, training: RunRecord, with_sampler: bool) -> str:
    label = f"{short_checkpoint_label(training, row['epoch'])}, {WEIGHT_WORDS[row['weights']]}"
    return f"{label}, {sampler_words(row)}" if with_sampler else label


def _several_samplers(scores: RunRecord) -> bool:
    return len({sampler_words(row) for row in scores.metrics["rows"]}) > 1


def time_score_rows(scores: RunRecord, reference: RunRecord, training: RunRecord) -> list[list[str]]:
    """One row per (checkpoint, weights, sampler) of the scores run, then the real digits' row."""
    rows = []
    for row in scores.metrics["rows"]:
        shares = row["class_shares"]
        smallest = min(range(10), key=shares.__getitem__)
        rows.append([short_checkpoint_label(training, row["epoch"]), WEIGHT_WORDS[row["weights"]], sampler_words(row),
                     percent(row["confident_fraction"]), f"{percent(shares[smallest])} (digit {smallest})",
                     fmt(row["frechet_distance"]), f"{frechet_ratio(row['frechet_distance'], reference):.1f}×"])
    real = reference.metrics
    shares = real["class_shares"]
    smallest = min(range(10), key=shares.__getitem__)
    rows.append([f"real training digits ({reference.params['count']:,})", "–", "–", percent(real["confident_fraction"]),
                 f"{percent(shares[smallest])} (digit {smallest})", fmt(real["frechet_floor"]), "1.0×"])
    return rows


def scores_sampler_text(scores: RunRecord, num_timesteps: int) -> str:
    """Which samplers drew the scored samples, and the CLI calls that draw the same way."""
    steps = scores.params["steps"]
    if steps is None:
        text = f"Part B's sampler on all {num_timesteps} steps (what `sample-digits --model time` runs by default)"
    else:
        text = (f"Part A's strided loop on {steps} of the {num_timesteps} steps, posterior variance "
                f"(`sample-digits --model time --steps {steps}` samples the same way)")
    steps_option = "" if steps is None else f" --steps {steps}"
    added = []
    for how in score_samplers(steps, scores.params.get("corrector_snr"), scores.params.get("matched_start", False),
                              num_timesteps)[1:]:
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
    rows = final_scores(scores, training)
    matched = [row for row in rows if row.get("start") == "matched"]
    if not matched:
        return ""
    abar = float(partb_models.ddpm_schedule(training).zero_based_alphas_cumprod[-1])
    text = (f"**The matched start.** This schedule ends at \\(\\bar\\alpha_T = {abar:.3f}\\): a training "
            f"digit noised to \\(x_T\\) still holds \\(\\sqrt{{\\bar\\alpha_T}}\\) = {100 * abar ** 0.5:.0f}% "
            "of it, and over the training digits these \\(x_T\\) have mean \\(\\sqrt{\\bar\\alpha_T}\\,\\mu\\) and "
            "covariance \\(\\bar\\alpha_T \\Sigma + (1 - \\bar\\alpha_T) I\\) (\\(\\mu, \\Sigma\\): the "
            "digits' mean and covariance), while the loop starts from \\(\\mathcal{N}(0, I)\\). The matched "
            "start draws \\(x_T\\) from the Gaussian with those two moments instead, made from the same "
            "noise (`matched_start.MatchedStart`); flow matching has no such gap, its \\(t = 0\\) is pure noise.")
    for row in matched:
        twin = next((other for other in rows if other.get("start", "noise") == "noise"
                     and other["steps"] == row["steps"] and other.get("corrector_snr") == row.get("corrector_snr")), None)
        if twin is not None:
            text += (f" With {sampler_words(twin)} it moves the Fréchet distance from "
                     f"{frechet_ratio(twin['frechet_distance'], reference):.1f}× to "
                     f"{frechet_ratio(row['frechet_distance'], reference):.1f}× the real digits' and the confident "
                     f"share from {percent(twin['confident_fraction'])} to {percent(row['confident_fraction'])}.")
    return text


def scored_samples_figure(page: Page, scores: RunRecord, training: RunRecord) -> None:
    """The first samples of every sampler the last checkpoint was scored with, one row each (the
    weights the figures sample); a column starts from one noise draw in every row. Nothing where a
    single sampler scored it: there is nothing to set beside its samples."""
    last = final_scores(scores, training)
    if len(last) < 2:
        return
    stored = scores.load("shown_samples.pt")
    indices = [scores.metrics["rows"].index(row) for row in last]
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


def final_scores(scores: RunRecord, training: RunRecord) -> list[dict]:
    """The scores rows of the weights the figures sample at the last checkpoint, one per sampler."""
    last = partb_models.checkpoint_epochs(training)[-1]
    weights = partb_models.sampled_weights(training)
    return [row for row in scores.metrics["rows"] if row["epoch"] == last and row["weights"] == weights]


def unguided_bar_text(scores: RunRecord, reference: RunRecord, training: RunRecord, bar: QualityBar) -> str:
    """Each part of the bar for unconditional samples, met or not, for the weights the figures show,
    one paragraph per sampler that scored them."""
    weights = WEIGHT_WORDS[partb_models.sampled_weights(training)]
    several = _several_samplers(scores)
    paragraphs = []
    for row in final_scores(scores, training):
        ratio = frechet_ratio(row["frechet_distance"], reference)
        smallest = min(row["class_shares"])
        parts = [
            (row["confident_fraction"] >= bar.confident,
             f"{percent(row['confident_fraction'])} read with confidence ≥ 0.9 (bar: {percent(bar.confident)})"),
            (smallest >= bar.smallest_share,
             f"the rarest digit is {percent(smallest)} of the samples (bar: {percent(bar.smallest_share)})"),
            (ratio <= bar.unguided_frechet_ratio,
             f"the Fréchet distance is {ratio:.1f}× the real digits' (bar: {bar.unguided_frechet_ratio:g}×)"),
        ]
        met = all(ok for ok, _ in parts)
        listed = "; ".join(f"{text}, {'met' if ok else '**not met**'}" for ok, text in parts)
        sampler = f", sampled with {sampler_words(row)}" if several else ""
        paragraphs.append(f"The bar for unconditional samples is **{'met' if met else 'not met'}** by the {weights} "
                          f"weights after {last_checkpoint_label(training)}{sampler}: {listed}.")
    return "\n\n".join(paragraphs)


def class_share_chart(scores: RunRecord, reference: RunRecord, training: RunRecord, bar: QualityBar) -> bytes:
    """The share of each digit the judge reads, per (checkpoint, weights, sampler), beside the real digits'."""
    several = _several_samplers(scores)
    series = {_row_label(row, training, several): row["class_shares"] for row in scores.metrics["rows"]}
    series["real digits"] = reference.metrics["class_shares"]
    return grouped_bars(series, [str(d) for d in range(10)], "digit the judge reads", "share of samples",
                        reference_line=(bar.smallest_share, f"bar: every digit ≥ {percent(bar.smallest_share)}"))


def loss_curve(page: Page, run: RunRecord, caption: str) -> None:
    losses = run.load("losses.pt").tolist()
    per_epoch = run.metrics["steps_per_epoch"]
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
        m = run.metrics
        rows.append([
            label, f"{m['num_parameters']:,}", m["precision"], run.device, fmt(m["wall_time_s"], 1),
            f"{m['images_per_s']:,.0f}", f"{m['num_images_seen']:,}", fmt(m["final_epoch_loss"], 4),
        ])
    return rows


TRAINING_COST_HEADERS = ["model", "parameters", "precision", "device", "wall time (s)", "images/s",
                         "images seen", "last-epoch loss"]


def grid_rows(images: torch.Tensor, n_cols: int, per_class: int | None = None) -> list[list[torch.Tensor]]:
    """Rows of n_cols images; with per_class (images ordered 0,0,..,1,1,..) one column per class."""
    if per_class:
        return [[images[digit * per_class + r] for digit in range(images.shape[0] // per_class)] for r in range(per_class)]
    return [list(images[i : i + n_cols]) for i in range(0, images.shape[0], n_cols)]


def samples_per_epoch(page: Page, training: RunRecord, samples: RunRecord, n_cols: int, what: str,
                      per_class: int | None = None) -> None:
    stored = samples.load("samples.pt")
    for epoch in partb_models.checkpoint_epochs(training):
        images = stored["epochs"][str(epoch)]["samples"]
        page.figure(
            image_grid(grid_rows(images, n_cols, per_class), cell_inches=0.7,
                       col_titles=[str(d) for d in range(10)] if per_class else None),
            f"{what} after {partb_models.checkpoint_label(training, epoch)}.",
            [training, samples],
        )


def reverse_process_gif(page: Page, training: RunRecord, samples: RunRecord, n_cols: int, what: str,
                        per_class: int | None = None) -> None:
    stored = samples.load("samples.pt")
    final = str(partb_models.checkpoint_epochs(training)[-1])
    frames = stored["epochs"][final]["frames"]
    timesteps = stored["epochs"][final]["frame_steps"]
    if frames is None:
        return
    if per_class:  # one column per class, as in the still figures
        order = torch.tensor([d * per_class + r for r in range(per_class) for d in range(frames.shape[1] // per_class)])
        frames, n_cols = frames[:, order], frames.shape[1] // per_class
    tiles = [tile(frame.clamp(0, 1), n_cols) for frame in frames]
    page.figure(
        gif_bytes(tiles, scale=3),
        f"The reverse process of {what}, from pure noise at t = {timesteps[0]} to t = 0, one frame every "
        f"{timesteps[0] - timesteps[1]} steps ({partb_models.checkpoint_label(training, int(final))}).",
        [training, samples],
        pixelated=True,
    )
