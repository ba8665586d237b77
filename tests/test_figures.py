"""Image grids drawn pixel by pixel (labels on every row, every tile framed, within the content
column) and the cache of rendered figures."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_lab.report import figure_cache, figures
from diffusion_lab.report.figures import MAX_GRID_WIDTH, grid_layout, image_grid


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def digit(value: float = 0.5) -> torch.Tensor:
    return torch.full((1, 28, 28), value)


# --- layout ----------------------------------------------------------------------------------------


def test_every_row_keeps_its_label_even_when_its_first_cell_is_empty():
    # 1.3's figure: the second row starts with an empty cell under "Original Image"
    layout = grid_layout([[(28, 28)] * 4, [None] + [(28, 28)] * 3], col_titles=["a", "b", "c", "d"],
                         row_titles=["noisy", "one-step\ndenoised"])
    row_labels = [text for text in layout.texts if text.anchor == "row"]
    assert [text.text for text in row_labels] == ["noisy", "one-step\ndenoised"]
    first_row_tile = next(tile for tile in layout.tiles if tile.row == 0)
    assert all(text.x < first_row_tile.left for text in row_labels)
    assert {(tile.row, tile.col) for tile in layout.tiles} == {(0, c) for c in range(4)} | {(1, c) for c in (1, 2, 3)}


def test_labels_of_every_row_are_drawn_in_the_picture():
    with_labels = pixels(image_grid([[digit(), digit()], [None, digit()]], row_titles=["noisy", "one-step"]))
    without = pixels(image_grid([[digit(), digit()], [None, digit()]]))
    assert with_labels.shape[1] > without.shape[1]  # the labels take room on the left
    second_row = with_labels[with_labels.shape[0] * 3 // 4, : with_labels.shape[1] - without.shape[1]]
    assert (second_row < 128).any(), "the second row's label is drawn, though its first cell is empty"


def test_tiles_are_enlarged_by_whole_factors_and_kept_sharp():
    image = torch.zeros(1, 28, 28)
    image[0, :, ::2] = 1.0  # one-pixel stripes survive only a nearest-neighbour enlargement
    layout = grid_layout([[(28, 28)]], cell_px=140)
    (tile,) = layout.tiles
    assert tile.zoom == 5 and tile.width == 140
    drawn = pixels(image_grid([[image]], cell_inches=1.4))
    crop = drawn[tile.top:tile.top + tile.height, tile.left:tile.left + tile.width, 0]
    assert set(np.unique(crop)) == {0, 255}
    assert (crop[:, :5] == 255).all() and (crop[:, 5:10] == 0).all()


def test_every_tile_is_framed_so_a_white_one_stays_visible():
    drawn = pixels(image_grid([[digit(1.0), digit(0.0)]], col_titles=["mask", "image"]))
    layout = grid_layout([[(28, 28), (28, 28)]], col_titles=["mask", "image"])
    for tile in layout.tiles:
        left, top, right, bottom = tile.frame
        border = np.concatenate([drawn[top, left:right + 1], drawn[bottom, left:right + 1],
                                 drawn[top:bottom + 1, left], drawn[top:bottom + 1, right]])
        assert (border < 255).all() and (border > 0).all(), "a grey frame on all four sides"


def test_a_wide_grid_is_kept_within_the_content_column_by_wrapping():
    titles = [[f"8 #{i}\njudge: 8 (0.99)" for i in range(12)], ["judge: 3 (0.50)"] * 12]
    sizes = [[(28, 28)] * 12] * 2
    layout = grid_layout(sizes, row_titles=["20 steps", "300 steps"], cell_titles=titles, cell_px=120)
    assert layout.width <= MAX_GRID_WIDTH
    assert all(tile.zoom >= 2 for tile in layout.tiles)
    # wrapped into blocks: each row title appears once per block, every column still drawn
    assert [t.text for t in layout.texts if t.anchor == "row"].count("20 steps") >= 2
    assert len(layout.tiles) == 24
    narrow = grid_layout([[(28, 28)] * 3], col_titles=["a", "b", "c"], cell_px=120)
    assert len([t for t in narrow.texts if t.anchor == "row"]) == 0 and narrow.width < MAX_GRID_WIDTH


def test_grids_are_the_same_bytes_every_time(monkeypatch):
    # Without a run cache there is no figure cache (figure_cache.py), so both calls really draw:
    # with one, the second would read the first's bytes back and prove nothing.
    monkeypatch.delenv("DIFFUSION_LAB_CACHE", raising=False)
    rows = [[torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(i)) for i in range(3)]]
    titles = ["a", "b", "ᾱ σ ★"]
    assert image_grid(rows, col_titles=titles) == image_grid(rows, col_titles=titles)


# --- the figure cache ------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_CACHE", str(tmp_path))
    return tmp_path / figure_cache.FOLDER


@pytest.fixture
def drawn(monkeypatch):
    """How often the grid was really drawn, not read from the cache."""
    calls = []
    original = figures.grid_layout

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(figures, "grid_layout", counting)
    return calls


def test_the_cache_returns_identical_bytes_without_drawing_again(cache, drawn):
    rows = [[digit(0.2), digit(0.8)]]
    first = image_grid(rows, col_titles=["a", "b"])
    assert len(drawn) == 1 and len(list(cache.rglob("*"))) == 2  # one folder, one figure
    second = image_grid(rows, col_titles=["a", "b"])
    assert second == first and len(drawn) == 1


ROWS = [[digit(0.2), digit(0.8)]]
CHANGED_PIXEL = [[digit(0.2), digit(0.8).index_fill(1, torch.tensor([3]), 0.0)]]


@pytest.mark.parametrize("rows, options", [
    (CHANGED_PIXEL, {"col_titles": ["a", "b"]}),
    (ROWS, {"col_titles": ["a", "c"]}),
    (ROWS, {"col_titles": ["a", "b"], "cell_inches": 0.7}),
    (ROWS, {"col_titles": ["a", "b"], "value_range": (-1.0, 1.0)}),
], ids=["pixels", "title", "layout", "value range"])
def test_the_cache_misses_when_an_input_changes(cache, drawn, rows, options):
    image_grid(ROWS, col_titles=["a", "b"])
    data = image_grid(rows, **options)
    assert len(drawn) == 2, "a changed input draws the figure anew"
    assert data == figures.image_grid.__wrapped__(rows, **options)


def test_the_cache_misses_when_the_rendering_code_changes(cache, drawn, monkeypatch):
    image_grid(ROWS, col_titles=["a", "b"])
    monkeypatch.setattr(figure_cache, "_renderer_identity", lambda module: "edited source")
    image_grid(ROWS, col_titles=["a", "b"])
    assert len(drawn) == 2


def test_without_a_build_cache_nothing_is_kept(monkeypatch, tmp_path, drawn):
    monkeypatch.delenv("DIFFUSION_LAB_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    image_grid([[digit()]])
    image_grid([[digit()]])
    assert len(drawn) == 2 and not any(tmp_path.iterdir())


def test_the_key_tells_tensors_apart_by_dtype_shape_and_values():
    def key(*args):
        return figure_cache.figure_key(figures.image_grid.__wrapped__, args, {})
    base = torch.zeros(1, 2, 2)
    assert key(base) == key(base.clone())
    assert len({key(base), key(base.double()), key(base.reshape(1, 1, 4)), key(base + 1), key(1), key("1")}) == 6
    with pytest.raises(figure_cache.Unhashable):
        key(object())


def test_a_tile_larger_than_its_cell_is_shrunk_to_it_not_enlarged():
    layout = grid_layout([[(256, 256), (28, 28)]], cell_px=240)
    photo, digit_tile = layout.tiles
    assert (photo.width, photo.height) == (240, 240) and photo.zoom < 1
    assert digit_tile.zoom == 8 and digit_tile.width == 224
    assert image_grid([[torch.rand(3, 256, 256), digit()]], cell_inches=2.4)[:8] == b"\x89PNG\r\n\x1a\n"
