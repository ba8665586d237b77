"""report.illusion_figures on the anagram views: the noise-statistics table and sentence are read
from the run, and a view that moves the data range says so in its verdict."""

from __future__ import annotations

from pathlib import Path

from diffusion_lab.report import illusion_figures
from diffusion_lab.runcache.runs import RunRecord


def _run(params: dict, metrics: dict) -> RunRecord:
    return RunRecord(
        name="parta/test", key="0" * 64, params=params, seed=0, dir=Path("."), hit=True, wall_s=0.0,
        compute_s=0.0, device="cpu", profile="tiny", backend=None, function="x", versions={}, commit="x",
        created="now", metrics=metrics,
    )


STATS = _run(
    {"shape": [1, 28, 28], "matrix_shape": [1, 28, 28], "draws": 200, "blur_kernel": [5, 1.0]},
    {"data_range": [0.0, 1.0], "rows": [
        {"view": "flip", "orthogonality_error": 0.0, "noise_std": 0.998, "neighbour_correlation": 0.001,
         "view_range": None},
        {"view": "negate", "orthogonality_error": 0.0, "noise_std": 1.003, "neighbour_correlation": -0.002,
         "view_range": [-1.0, -0.0]},
        {"view": "blur", "orthogonality_error": 0.95, "noise_std": 0.298, "neighbour_correlation": 0.79,
         "view_range": None},
    ]},
)


def test_the_table_has_a_row_per_view_with_its_numbers():
    rows = illusion_figures.view_statistics_rows(STATS)
    assert [row[0] for row in rows] == ["flipped upside down", "negated", "blurred"]
    assert rows[1][1:5] == ["0", "1.003", "-0.002", "[−1, 0]"]
    assert rows[0][4] == "[0, 1] (kept)" and rows[2][5] == "counterexample, never used"


def test_the_sentence_reads_the_worst_view_and_the_blur():
    text = illusion_figures.view_statistics_text(STATS)
    assert "max |MᵀM − I| = 0 " in text and "std of 0.998 to 1.003 over 200 draws" in text
    assert "5 × 5, σ = 1" in text and "max |MᵀM − I| = 0.95" in text and "std 0.298" in text
    assert "correlate at 0.79" in text


def test_a_failing_view_that_moves_the_range_gives_that_reason():
    judge = {"both_count": 0}
    moved = _run({"candidates": 8}, {"judge": judge, "data_range": [0.0, 1.0], "view_range": [-1.0, -0.0]})
    kept = _run({"candidates": 8}, {"judge": judge, "data_range": [0.0, 1.0], "view_range": None})
    assert illusion_figures.verdict(moved).endswith("sends the model's data range [0, 1] to [−1, 0], "
                                                    "where the model was never shown an image")
    assert illusion_figures.verdict(kept) == "**fails**: no candidate of 8 reads as intended in both views"
