"""Figures and tables shared by the Part B pages: laying out results, never computing them."""

from __future__ import annotations

import torch

from diffusion_lab.experiments import partb_models
from diffusion_lab.report.figures import gif_bytes, image_grid, line_plot, tile
from diffusion_lab.report.page import Page
from diffusion_lab.runcache.runs import RunRecord


def fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


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
