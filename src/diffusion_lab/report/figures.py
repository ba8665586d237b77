"""Pictures as PNG/GIF bytes: rows and grids of images with titles, line plots, animations.

Everything returns bytes so that a page script can hand them to mkdocs-gen-files, and so that
the same inputs always give the same bytes (no timestamps in the files); the bytes are kept by
content (`figure_cache`), so a warm rebuild draws only what changed.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from diffusion_lab.report.figure_cache import cached_figure  # noqa: E402

_PNG_METADATA = {"Software": None}


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


def _line_count(text: str | None) -> int:
    return text.count("\n") + 1 if text else 0


# --- image grids: laid out in pixels, tiles upscaled by whole factors, text at 1:1 -----------------
#
# A grid is drawn with PIL rather than matplotlib so that every pixel is placed on purpose: each
# tile is enlarged by a whole factor with nearest-neighbour in the PNG itself (sharp without CSS
# `image-rendering: pixelated`, which would also make the titles jagged), titles are rendered at the
# resolution they are shown at, and the whole picture fits the page's content column, so the
# browser never has to shrink it. A grid too wide for the column is wrapped into blocks of columns.

MAX_GRID_WIDTH = 760  # px: material's content column at its widest, so a grid is shown at 1:1
_GRID_FONT_PX = 12  # about matplotlib's 9 pt at 100 dpi, the size the grids used before
_LINE_PX = 15
_GAP = 8  # px between cells, and around the grid
_TITLE_GAP = 3  # px between a title and its tile
_MIN_TILE_PX = 56  # tiles are not shrunk below this (28x28 digits at 2x) to fit: the grid wraps instead
_FRAME = (150, 150, 150)  # every tile is framed, so a white tile stays visible on the white page
_TEXT = (0, 0, 0)
_BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class GridText:
    """A (possibly multi-line) label: `anchor` "top" centres it horizontally on x with its bottom
    line ending at y; "row" right-aligns it at x, centred vertically on y."""

    text: str
    x: int
    y: int
    anchor: str


@dataclass(frozen=True)
class GridTile:
    """Image rows[row][col], drawn at (left, top) enlarged `zoom` times, framed just outside."""

    row: int
    col: int
    left: int
    top: int
    zoom: float  # a whole factor, or below 1 for a large tile shrunk to its cell
    width: int
    height: int

    @property
    def frame(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the 1-px frame around the tile, inclusive."""
        return self.left - 1, self.top - 1, self.left + self.width, self.top + self.height


@dataclass(frozen=True)
class GridLayout:
    width: int
    height: int
    tiles: tuple[GridTile, ...]
    texts: tuple[GridText, ...]


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"),
                              _GRID_FONT_PX)


def _text_width(text: str | None) -> int:
    if not text:
        return 0
    return math.ceil(max(_font().getlength(line) for line in text.split("\n")))


def _zoom(size: int, target_px: float) -> float:
    """The whole factor that brings a tile of `size` pixels closest to `target_px` without exceeding
    it; a tile larger than the target (a photo, not pixel art) is shrunk to it instead."""
    return max(1, int(target_px // size)) if size <= target_px else target_px / size


def grid_layout(
    sizes: Sequence[Sequence[tuple[int, int] | None]],
    col_titles: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    cell_titles: Sequence[Sequence[str | None]] | None = None,
    cell_px: float = 140.0,
    max_width: int = MAX_GRID_WIDTH,
) -> GridLayout:
    """Where each tile and label of a grid goes. `sizes[r][c]` is the (height, width) in pixels of
    image rows[r][c], or None for an empty cell (its row keeps its label). Tiles are enlarged by
    whole factors towards `cell_px` (one larger than that, a photo, is shrunk to it), less where the
    grid would be wider than `max_width`; where
    even tiles of _MIN_TILE_PX are too wide, the columns are wrapped into blocks, each with its
    own titles and the row titles again."""
    n_rows = len(sizes)
    n_cols = max(len(row) for row in sizes)

    def title(r: int, c: int) -> str | None:
        if cell_titles is not None:
            return cell_titles[r][c] if c < len(cell_titles[r]) else None
        return col_titles[c] if col_titles is not None and r == 0 and c < len(col_titles) else None

    def size(r: int, c: int) -> tuple[int, int] | None:
        return sizes[r][c] if c < len(sizes[r]) else None

    def zooms(target: float) -> dict[tuple[int, int], int]:
        return {(r, c): _zoom(max(s), target) for r in range(n_rows) for c in range(n_cols) if (s := size(r, c))}

    label_width = max((_text_width(t) for t in row_titles or ()), default=0)
    label_width += _GAP if label_width else 0

    def column_widths(zoom: dict, cols: Sequence[int]) -> list[int]:
        return [max([_text_width(title(r, c)) for r in range(n_rows)]
                    + [round(size(r, c)[1] * zoom[r, c]) for r in range(n_rows) if size(r, c)] + [1]) + _GAP
                for c in cols]

    def total_width(zoom: dict, cols: Sequence[int]) -> int:
        return _GAP + label_width + sum(column_widths(zoom, cols))

    # Shrink the tiles (not below _MIN_TILE_PX) until the grid fits; if it still does not, wrap the
    # columns into equal blocks, then let the tiles grow back as far as the blocks allow.
    smallest = max(_MIN_TILE_PX, min((max(s) for row in sizes for s in row if s), default=1))
    targets = [float(cell_px)]
    while targets[-1] > smallest:
        targets.append(max(float(smallest), targets[-1] - 4))
    per_block = n_cols
    while per_block > 1 and total_width(zooms(targets[-1]), range(per_block)) > max_width:
        per_block -= 1
    n_blocks = -(-n_cols // per_block)
    per_block = -(-n_cols // n_blocks)
    blocks = [list(range(start, min(start + per_block, n_cols))) for start in range(0, n_cols, per_block)]
    zoom = next((zooms(t) for t in targets if all(total_width(zooms(t), cols) <= max_width for cols in blocks)),
                zooms(targets[-1]))

    tiles, texts = [], []
    top, width = _GAP, 0
    for cols in blocks:
        widths = column_widths(zoom, cols)
        lefts = [_GAP + label_width + sum(widths[:i]) for i in range(len(cols))]
        width = max(width, lefts[-1] + widths[-1])
        for r in range(n_rows):
            title_lines = max(_line_count(title(r, c)) for c in cols)
            band = title_lines * _LINE_PX + (_TITLE_GAP if title_lines else 0)
            row_height = max([round(size(r, c)[0] * zoom[r, c]) for c in cols if size(r, c)] + [1])
            tile_top = top + band
            for i, c in enumerate(cols):
                centre = lefts[i] + (widths[i] - _GAP) // 2
                if title(r, c):
                    texts.append(GridText(title(r, c), centre, tile_top - _TITLE_GAP, "top"))
                if size(r, c):
                    z = zoom[r, c]
                    h, w = (round(n * z) for n in size(r, c))
                    tiles.append(GridTile(r, c, centre - w // 2, tile_top + (row_height - h) // 2, z, w, h))
            if row_titles is not None and row_titles[r]:
                texts.append(GridText(row_titles[r], label_width, tile_top + row_height // 2, "row"))
            top = tile_top + row_height + _GAP
        top += _GAP  # a wider gap between blocks of wrapped columns than between rows
    return GridLayout(width, top - _GAP, tuple(tiles), tuple(texts))


def _draw_text(draw: ImageDraw.ImageDraw, item: GridText) -> None:
    lines = item.text.split("\n")
    if item.anchor == "top":
        first = item.y - len(lines) * _LINE_PX
        for i, line in enumerate(lines):
            draw.text((item.x, first + i * _LINE_PX + _LINE_PX // 2), line, fill=_TEXT, font=_font(), anchor="mm")
    else:
        first = item.y - len(lines) * _LINE_PX // 2
        for i, line in enumerate(lines):
            draw.text((item.x, first + i * _LINE_PX + _LINE_PX // 2), line, fill=_TEXT, font=_font(), anchor="rm")


def _tile_image(array: np.ndarray, tile: GridTile) -> Image.Image:
    image = Image.fromarray((array * 255.0 + 0.5).astype(np.uint8)).convert("RGB")
    if tile.zoom == 1:
        return image
    return image.resize((tile.width, tile.height), Image.NEAREST if tile.zoom > 1 else Image.LANCZOS)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@cached_figure
def image_grid(
    rows: Sequence[Sequence],
    col_titles: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    cell_titles: Sequence[Sequence[str]] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    cell_inches: float = 1.4,
    max_width: int = MAX_GRID_WIDTH,
) -> bytes:
    """A PNG grid of images, rows x columns (None: an empty cell), with optional column titles (over
    the first row), row titles (left of each row, empty cells included) or per-cell titles. Each
    image is a tensor/array as `to_numpy_image` takes, shown within `value_range`; tiles are
    enlarged by whole factors towards `cell_inches` at 100 px per inch, and framed."""
    arrays = [[None if image is None else to_numpy_image(image, value_range) for image in row] for row in rows]
    layout = grid_layout([[None if a is None else a.shape[:2] for a in row] for row in arrays],
                         col_titles, row_titles, cell_titles, cell_inches * 100, max_width)
    canvas = Image.new("RGB", (layout.width, layout.height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for tile in layout.tiles:
        draw.rectangle(tile.frame, outline=_FRAME, width=1)
        canvas.paste(_tile_image(arrays[tile.row][tile.col], tile), (tile.left, tile.top))
    for item in layout.texts:
        _draw_text(draw, item)
    return _png_bytes(canvas)


def image_row(images: Sequence, titles: Sequence[str] | None = None, **kwargs) -> bytes:
    return image_grid([list(images)], col_titles=titles, **kwargs)


@cached_figure
def line_plot(
    series: dict[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    log_y: bool = False,
    x_values: dict[str, Sequence[float]] | None = None,
    smooth: int = 0,
    width: float = 6.4,
    height: float = 3.6,
    reference_line: tuple[float, str] | None = None,
) -> bytes:
    """Curves (e.g. training losses per step); `smooth` draws a running mean over that many points too;
    `reference_line` (y, label) draws a dashed horizontal line such as a threshold."""
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
    if reference_line is not None:
        ax.axhline(reference_line[0], color="black", linestyle="--", linewidth=1, label=reference_line[1])
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if len(series) > 1 or smooth or reference_line is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _figure_bytes(fig)


@cached_figure
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
    # below the axes, so that no label covers a bar however tall it grows
    ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    fig.tight_layout()
    return _figure_bytes(fig)


def _to_pil(frame, value_range, scale: int) -> Image.Image:
    array = (to_numpy_image(frame, value_range) * 255.0 + 0.5).astype(np.uint8)
    image = Image.fromarray(array)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale > 1 else image


@cached_figure
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
