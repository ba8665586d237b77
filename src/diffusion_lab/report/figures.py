"""Pictures as PNG/GIF bytes: rows and grids of images with titles, line plots, animations.

Everything returns bytes so that a page script can hand them to mkdocs-gen-files, and so that
the same inputs always give the same bytes (no timestamps in the files).
"""

from __future__ import annotations

import io
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

_PNG_METADATA = {"Software": None}
_TITLE_SIZE = 9
_LINE_INCHES = 0.16  # one line of title text at _TITLE_SIZE points


def to_numpy_image(image, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(H, W) or (H, W, 3) float in [0, 1] from a tensor/array shaped (C, H, W), (1, C, H, W) or (H, W)."""
    array = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image, dtype=np.float32)
    while array.ndim > 3:
        array = array[0]
    if array.ndim == 3 and array.shape[0] in (1, 3):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    low, high = value_range
    return np.clip((array - low) / (high - low), 0.0, 1.0)


def _figure_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata=_PNG_METADATA, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return buffer.getvalue()


def _show(ax, image: np.ndarray) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _line_count(text: str | None) -> int:
    return text.count("\n") + 1 if text else 0


def image_grid(
    rows: Sequence[Sequence],
    col_titles: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    cell_titles: Sequence[Sequence[str]] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    cell_inches: float = 1.4,
) -> bytes:
    """A grid of images, rows x columns, with optional column, row and per-cell titles."""
    n_rows = len(rows)
    n_cols = max(len(row) for row in rows)

    def title(r: int, c: int) -> str | None:
        if cell_titles is not None:
            return cell_titles[r][c]
        return col_titles[c] if col_titles is not None and r == 0 else None

    # Room above each row for its tallest title, so titles never run into the row above.
    title_lines = sum(max(_line_count(title(r, c)) for c in range(len(rows[r]))) for r in range(n_rows))
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(cell_inches * n_cols, cell_inches * n_rows + 0.1 + _LINE_INCHES * title_lines),
        squeeze=False,
    )
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r][c]
            if c >= len(rows[r]) or rows[r][c] is None:
                ax.axis("off")
                continue
            _show(ax, to_numpy_image(rows[r][c], value_range))
            if title(r, c):
                ax.set_title(title(r, c), fontsize=_TITLE_SIZE)
        if row_titles is not None:
            axes[r][0].set_ylabel(row_titles[r], fontsize=_TITLE_SIZE, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.3)
    return _figure_bytes(fig)


def image_row(images: Sequence, titles: Sequence[str] | None = None, **kwargs) -> bytes:
    return image_grid([list(images)], col_titles=titles, **kwargs)


def line_plot(
    series: dict[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    log_y: bool = False,
    x_values: dict[str, Sequence[float]] | None = None,
    smooth: int = 0,
    width: float = 6.4,
    height: float = 3.6,
) -> bytes:
    """Curves (e.g. training losses per step); `smooth` draws a running mean over that many points too."""
    fig, ax = plt.subplots(figsize=(width, height))
    for label, values in series.items():
        ys = np.asarray(values, dtype=np.float64)
        xs = np.asarray(x_values[label]) if x_values and label in x_values else np.arange(1, len(ys) + 1)
        if smooth and len(ys) > smooth:
            line, = ax.plot(xs, ys, alpha=0.25, linewidth=0.8, label=label)
            kernel = np.ones(smooth) / smooth
            ax.plot(xs[smooth - 1:], np.convolve(ys, kernel, mode="valid"), color=line.get_color(),
                    label=f"running mean over {smooth}")
        else:
            ax.plot(xs, ys, label=label, marker="o" if len(ys) < 20 else None)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if len(series) > 1 or smooth:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _figure_bytes(fig)


def grouped_bars(
    series: dict[str, Sequence[float]],
    categories: Sequence[str],
    xlabel: str,
    ylabel: str,
    reference_line: tuple[float, str] | None = None,
    width: float = 7.2,
    height: float = 3.2,
) -> bytes:
    """One group of bars per category, one bar per series (e.g. the share of each digit per model);
    `reference_line` (y, label) draws a dashed horizontal line such as a bar to clear."""
    fig, ax = plt.subplots(figsize=(width, height))
    positions = np.arange(len(categories))
    bar_width = 0.8 / max(1, len(series))
    for index, (label, values) in enumerate(series.items()):
        ax.bar(positions + (index - (len(series) - 1) / 2) * bar_width, values, bar_width, label=label)
    if reference_line is not None:
        ax.axhline(reference_line[0], color="black", linestyle="--", linewidth=1, label=reference_line[1])
    ax.set_xticks(positions, list(categories))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return _figure_bytes(fig)


def _to_pil(frame, value_range, scale: int) -> Image.Image:
    array = (to_numpy_image(frame, value_range) * 255.0 + 0.5).astype(np.uint8)
    image = Image.fromarray(array)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale > 1 else image


def gif_bytes(frames: Sequence, value_range=(0.0, 1.0), scale: int = 4, frame_ms: int = 80, hold_last_ms: int = 1500) -> bytes:
    """An animated GIF of `frames` (each an image or a pre-tiled grid), looping forever."""
    images = [_to_pil(frame, value_range, scale).convert("L" if np.ndim(to_numpy_image(frame, value_range)) == 2 else "RGB") for frame in frames]
    durations = [frame_ms] * (len(images) - 1) + [hold_last_ms]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return buffer.getvalue()


def tile(images: torch.Tensor, n_cols: int, pad: int = 1, pad_value: float = 1.0) -> torch.Tensor:
    """(N, C, H, W) -> one (C, H', W') image laid out in rows of n_cols, for animations."""
    n, c, h, w = images.shape
    n_rows = (n + n_cols - 1) // n_cols
    canvas = torch.full((c, n_rows * (h + pad) + pad, n_cols * (w + pad) + pad), pad_value, dtype=images.dtype)
    for index in range(n):
        r, col = divmod(index, n_cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[:, top:top + h, left:left + w] = images[index]
    return canvas
