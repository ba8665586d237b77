"""Figures and tables shared by the Part B pages: laying out results, never computing them."""

from __future__ import annotations

import torch

from diffusion_lab.experiments import partb_models
from diffusion_lab.mnist.recipes import DDPMRecipe, DenoiserRecipe
from diffusion_lab.profiles import COURSE_GUIDANCE
from diffusion_lab.report.figures import gif_bytes, image_grid, line_plot, tile
from diffusion_lab.report.page import Page
from diffusion_lab.runcache.runs import RunRecord


MNIST_TRAINING_DIGITS = 60_000
WRITE_UP_GUIDANCE = 0.5  # the write-up's g, where the course uses COURSE_GUIDANCE


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
_RECIPE_WORDS = {"num_hiddens": "width D", "batch_size": "batch", "epochs": "epochs", "learning_rate": "learning rate",
                 "num_timesteps": "T", "train_subset": "training digits", "precision": "precision"}


def _spelled(value) -> str:
    """10,000 for counts, 0.002 for rates, the text itself otherwise."""
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def how_trained_like(recipe: DDPMRecipe, other: DDPMRecipe, other_name: str) -> str:
    """A sentence comparing two DDPM recipes, from their fields: "it is trained exactly like the
    time-conditioned one" only when nothing but the class dropout differs."""
    differences = []
    for field, words in _RECIPE_WORDS.items():
        mine, theirs = getattr(recipe, field), getattr(other, field)
        if field == "train_subset":
            mine, theirs = training_digit_count(recipe), training_digit_count(other)
        if mine != theirs:
            differences.append(f"{words} {_spelled(mine)} (the {other_name} one: {_spelled(theirs)})")
    if not differences:
        return f"it is trained exactly like the {other_name} one"
    return f"it is trained like the {other_name} one except for: " + "; ".join(differences)


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


GUIDANCE_SWEEP_HEADERS = ["guidance g", "judge accuracy", "worst digit (accuracy)", "Fréchet distance", "floor",
                          "images/s"]


def guidance_sweep_rows(sweep: RunRecord, reference: RunRecord) -> list[list[str]]:
    """One row per guidance scale of the sweep: judge accuracy, worst digit, Fréchet distance beside
    the real-data floor of the `reference` run, and sampling throughput."""
    floor = fmt(reference.metrics["frechet_floor"])
    return [[guidance_label(row["guidance_scale"]), f"{100 * row['judge_accuracy']:.1f}%",
             worst_digit(row["per_class_accuracy"]), fmt(row["frechet_distance"]), floor,
             f"{row['images_per_s']:,.0f}"]
            for row in sweep.metrics["rows"]]


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
            pixelated=True,
        )


def reverse_process_gif(page: Page, training: RunRecord, samples: RunRecord, n_cols: int, what: str,
                        per_class: int | None = None) -> None:
    stored = samples.load("samples.pt")
    final = str(partb_models.checkpoint_epochs(training)[-1])
    frames = stored["epochs"][final]["frames"]
    timesteps = stored["epochs"][final]["frame_timesteps"]
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
