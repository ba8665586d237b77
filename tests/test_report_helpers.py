"""The report helpers that page scripts call instead of holding logic, on small hand-made runs."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_lab.experiments import parta_upsample
from diffusion_lab.experiments.parta_plan import Anagram, Hybrid
from diffusion_lab.profiles import COURSE_GUIDANCE, QualityBar, get_profile
from diffusion_lab.report import page as page_module
from diffusion_lab.report import illusion_figures as il
from diffusion_lab.report import parta_figures as pa
from diffusion_lab.report import partb_figures as pb
from diffusion_lab.report.page import Page
from diffusion_lab.runcache.runs import RunRecord


def make_run(name: str = "parta/test", params: dict | None = None, metrics: dict | None = None,
             directory: Path = Path("."), files: dict | None = None) -> RunRecord:
    """A finished run with these params and metrics; `files` are torch-saved into `directory`."""
    for filename, content in (files or {}).items():
        torch.save(content, directory / filename)
    return RunRecord(
        name=name, key="0" * 64, params=params or {}, seed=0, dir=directory, hit=True, wall_s=0.0,
        compute_s=0.0, device="cpu", profile="tiny", backend=None, function="diffusion_lab.experiments.parta.sdedit",
        versions={}, commit="x", created="now", metrics=metrics or {},
    )


def folder(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir()
    return path


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).size


def candidate(read_1: int, read_2: int, p_1: float = 0.5, p_2: float = 0.5) -> dict:
    return {"read_1": read_1, "read_2": read_2, "p_1": p_1, "p_2": p_2}


def judged_hybrid(targets: list[int], candidates: list[dict], best: int = 0) -> RunRecord:
    return make_run("parta/hybrid", params={"candidates": len(candidates)},
                    metrics={"judge": {"targets": targets, "candidates": candidates, "best": best}})


# --- small text helpers -------------------------------------------------------------------------


def test_only_if_keeps_the_text_only_when_the_condition_holds():
    assert pa.only_if(True, " A note.") == " A note."
    assert pa.only_if(False, " A note.") == ""


def test_is_unconditional_only_for_the_empty_prompt():
    assert pa.is_unconditional("")
    assert not pa.is_unconditional("a handwritten 7")


def test_plural_adds_an_s_above_one():
    assert pa.plural("image", 1) == "image"
    assert pa.plural("image", 3) == "images"


def test_percent_is_the_share_with_one_decimal():
    assert pa.percent(2, 64) == "3.1%"
    assert pa.percent(16, 64) == "25.0%"


def test_existing_runs_drops_the_runs_a_build_does_not_make_and_keeps_order():
    first, second = make_run("a"), make_run("b")
    assert pa.existing_runs(first, None, second) == [first, second]
    assert pa.existing_runs(None) == []


def test_ordinal_suffixes():
    assert [pb.ordinal(n) for n in (1, 2, 3, 4, 10, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "10th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


def test_training_digit_count_is_the_subset_or_all_of_mnist():
    recipe = get_profile("tiny").partb.denoiser
    assert pb.training_digit_count(replace(recipe, train_subset=512)) == 512
    assert pb.training_digit_count(replace(recipe, train_subset=None)) == 60_000


# --- 1.1, 1.2: forward process and blur ---------------------------------------------------------


def forward_run(tmp_path: Path, timesteps=(5, 10, 15)) -> RunRecord:
    image = torch.zeros(1, 8, 8)
    rows = [{"t": t, "abar": 1 - t / 20, "kernel_size": 3, "sigma": 0.5 + t / 10, "noisy_psnr": 10.0 + t,
             "blur_psnr": 20.0 + t} for t in timesteps]
    return make_run("parta/forward-process", metrics={"rows": rows, "data_range": [-1.0, 1.0]}, directory=tmp_path,
                    files={"forward.pt": {"clean": image, "noisy": {t: image for t in timesteps},
                                          "blurred": {t: image for t in timesteps}}})


def test_forward_and_blur_grids_have_a_column_per_noise_level(tmp_path):
    three, one = forward_run(folder(tmp_path, "three"), (5, 10, 15)), forward_run(folder(tmp_path, "one"), (5,))
    assert png_size(pa.forward_grid(three))[0] > png_size(pa.forward_grid(one))[0]
    assert png_size(pa.blur_grid(three, cell_inches=1.4))[0] > png_size(pa.blur_grid(one, cell_inches=1.4))[0]
    assert png_size(pa.blur_grid(one, cell_inches=2.8))[0] > png_size(pa.blur_grid(one, cell_inches=1.4))[0]


def test_blur_table_rows_label_each_noise_level_and_skip_missing_runs(tmp_path):
    run = forward_run(tmp_path, (5, 10))
    rows = pa.blur_table_rows({"photo, IF schedule": None, "digit 7": run})
    assert rows == [["digit 7", 5, "0.750", "15.0", 3, "1", "25.0"], ["digit 7", 10, "0.500", "20.0", 3, "1.5", "30.0"]]
    assert len(rows[0]) == len(pa.BLUR_TABLE_HEADERS)
    both = pa.blur_table_rows({"photo": run, "digit": run})
    assert [row[0] for row in both] == ["photo", "photo", "digit", "digit"]


# --- 1.5, 1.6: samples and the judge's reading --------------------------------------------------


def test_sample_names_count_the_prompts():
    run = make_run(params={"prompts": ["", "", ""]})
    assert pa.sample_names(run) == ["Sample 1", "Sample 2", "Sample 3"]
    guided = make_run(params={"prompts": ["a 3", ""]})
    assert pa.cfg_sample_names(guided) == ['Sample 1 with CFG\n"a 3"', 'Sample 2 with CFG\n"" (unconditional)']


def test_judged_titles_add_the_judges_reading_under_each_name(tmp_path):
    probabilities = torch.full((2, 10), 0.01)
    probabilities[0, 7], probabilities[1, 2] = 0.9, 0.55
    run = make_run(params={"prompts": ["", ""]}, directory=tmp_path,
                   files={"samples.pt": {"samples": torch.zeros(2, 1, 4, 4), "judge_probabilities": probabilities}})
    assert pa.judged_titles(run, ["Sample 1", "Sample 2"]) == ["Sample 1\njudge: 7 (0.90)", "Sample 2\njudge: 2 (0.55)"]


def test_judged_titles_are_the_names_alone_without_a_judge(tmp_path):
    run = make_run(params={"prompts": [""]}, directory=tmp_path, files={"samples.pt": {"samples": torch.zeros(1, 1, 4, 4)}})
    assert pa.judged_titles(run, ["Sample 1"]) == ["Sample 1"]


# --- 0: the stock sampler -----------------------------------------------------------------------


def stock_run(tmp_path: Path, judged: bool) -> RunRecord:
    prompts = ["a 1", "a 1", "a 7", "a 7"]
    probabilities = torch.full((4, 10), 0.0)
    probabilities[torch.arange(4), torch.tensor([1, 4, 7, 7])] = torch.tensor([0.8, 0.6, 0.9, 0.7])
    rows = [{"steps": 20, **({"judge_accuracy": 0.75} if judged else {})}]
    return make_run(
        "parta/stock-pipeline", params={"prompts": prompts, "steps": [20]}, directory=tmp_path,
        metrics={"rows": rows, "timing": {"20": {"seconds": 1.234, "images_per_s": 3.25}},
                 "capped_steps": [], "data_range": [-1.0, 1.0]},
        files={"stock.pt": {"stage1": {20: torch.zeros(4, 1, 4, 4)},
                            "judge_probabilities": {20: probabilities} if judged else {}}},
    )


def test_capped_steps_note_names_the_capped_counts_only_when_there_are_some():
    capped = make_run(metrics={"capped_steps": [50, 300]})
    assert pa.capped_steps_note(capped, 20) == " The plan's 50, 300 steps exceed this model's T = 20 and are capped at T."
    assert pa.capped_steps_note(make_run(metrics={"capped_steps": []}), 20) == ""


def test_stock_cell_titles_number_images_per_prompt_and_show_the_judge(tmp_path):
    run = stock_run(tmp_path, judged=True)
    assert pa.stock_cell_titles(run, 2, 20, first_row=True) == [
        "1 #1\njudge: 1 (0.80)", "1 #2\njudge: 4 (0.60)", "7 #1\njudge: 7 (0.90)", "7 #2\njudge: 7 (0.70)"]
    assert pa.stock_cell_titles(run, 2, 20, first_row=False)[1] == "judge: 4 (0.60)"
    assert pa.stock_cell_titles(run, 1, 20, first_row=True)[0] == '"a 1"\njudge: 1 (0.80)'
    unjudged = stock_run(tmp_path, judged=False)
    assert pa.stock_cell_titles(unjudged, 2, 20, first_row=False) == ["", "", "", ""]


def test_stock_grid_cells_are_smaller_with_several_images_per_prompt(tmp_path):
    run = stock_run(tmp_path, judged=False)
    assert png_size(pa.stock_stage1_grid(run, 2))[0] < png_size(pa.stock_stage1_grid(run, 1))[0]


def test_stock_cost_table_has_a_judge_column_only_when_judged(tmp_path):
    judged, unjudged = stock_run(folder(tmp_path, "a"), True), stock_run(folder(tmp_path, "b"), False)
    assert pa.stock_is_judged(judged) and not pa.stock_is_judged(unjudged)
    assert pa.stock_cost_headers(judged) == ["steps", "wall time (s)", "images / s", "judge accuracy"]
    assert pa.stock_cost_rows(judged) == [[20, "1.23", "3.2", "75% of 4"]]
    assert pa.stock_cost_headers(unjudged) == ["steps", "wall time (s)", "images / s"]
    assert pa.stock_cost_rows(unjudged) == [[20, "1.23", "3.2"]]


# --- 1.7: SDEdit ----------------------------------------------------------------------------------


def sdedit_run(shown, similarity, judge=None, write_up=(1, 3)) -> RunRecord:
    return make_run(params={"i_starts": list(write_up), "resemblance": 0.9},
                    metrics={"shown_i_starts": shown, "t_starts": {str(i): 20 - 4 * i for i in similarity},
                             "similarity": {str(i): r for i, r in similarity.items()},
                             **({"judge": judge} if judge else {})})


def test_sdedit_titles_follow_the_shown_i_starts_with_timestep_similarity_and_reading():
    run = sdedit_run([1, 3, 5], {1: 0.1, 3: 0.5, 5: 0.95, 7: 0.99})
    assert pa.sdedit_titles(run) == ["i_start=1\nt=16\nr = 0.10", "i_start=3\nt=8\nr = 0.50",
                                     "i_start=5\nt=0\nr = 0.95"]
    judged = sdedit_run([1, 3], {1: 0.1, 3: 0.5}, judge={"input": {"digit": 7}, "prompt": None,
                                                          "edits": {"1": {"digit": 2}, "3": {"digit": 7}}})
    assert [title.split("\n")[-1] for title in pa.sdedit_titles(judged)] == ["reads 2", "reads 7"]


def test_extension_note_says_what_was_added_and_why():
    assert pa.extension_note(sdedit_run([1, 3], {1: 0.2, 3: 0.93})) == (
        "At i_start = 3, the last of the write-up's values this model's timesteps reach, the edit already "
        "resembles its input (r = 0.93 ≥ 0.9): "
        "nothing is added.")
    assert pa.extension_note(sdedit_run([1, 3, 5, 7], {1: 0.2, 3: 0.5, 5: 0.8, 7: 0.91})) == (
        "i_start = 5 and 7 extend the write-up's list until an edit resembles its input (r ≥ 0.9): the first that "
        "does is i_start = 7 (r = 0.91).")
    assert "none does" in pa.extension_note(sdedit_run([1, 3, 5], {1: 0.2, 3: 0.5, 5: 0.8}))


def test_judge_reading_note_groups_the_edits_by_what_the_judge_reads():
    judge = {"input": {"digit": 7}, "prompt": 9,
             "edits": {str(i): {"digit": d} for i, d in {1: 9, 3: 9, 5: 4, 7: 7}.items()}}
    run = sdedit_run([1, 3, 5, 7], {1: 0.1, 3: 0.2, 5: 0.5, 7: 0.95}, judge=judge)
    assert pa.judge_reading_note(run) == (
        "The judge reads the prompt's 9 at i_start = 1 and 3; the input's 7 at i_start = 7; "
        "another digit at i_start = 5.")
    generic = dict(judge, prompt=None, edits={str(i): {"digit": 7} for i in (1, 3, 5, 7)})
    assert pa.judge_reading_note(sdedit_run([1, 3, 5, 7], {i: 0.5 for i in (1, 3, 5, 7)}, judge=generic)) == (
        "The judge reads the input's 7 at i_start = 1, 3, 5 and 7.")
    assert pa.judge_reading_note(sdedit_run([1, 3], {1: 0.1, 3: 0.2})) == ""


# --- 1.8, 1.9: illusions ------------------------------------------------------------------------


def test_illusion_names():
    assert il.anagram_name(Anagram("a 6", "a 9", "rot180")) == '"a 6" / "a 9", rotated 180°'
    assert il.hybrid_name(Hybrid("a 1", "a 7")) == 'far "a 1" / near "a 7"'
    views = [Anagram("a", "b", "rot180"), Anagram("c", "d", "flip"), Anagram("e", "f", "rot180")]
    assert il.anagram_view_names(views) == "flipped upside down, rotated 180°"


def test_the_judged_pick_is_the_judges_best_candidate():
    run = judged_hybrid([1, 7], [candidate(1, 7)] * 4, best=2)
    assert il.picked_candidate(run) == 2
    assert il.candidate_number(run) == "Candidate #3"
    assert il.picked_candidate_caption(run) == "Candidate #3 of 4, picked by the judge"


def test_without_a_judge_the_pick_is_the_first_candidate_and_says_nothing_of_a_judge():
    run = make_run("parta/anagram", params={"candidates": 5}, metrics={"data_range": [-1.0, 1.0]})
    assert il.picked_candidate(run) == 0
    assert il.candidate_number(run) == "Candidate #1"
    assert il.picked_candidate_caption(run) == "Candidate #1 of 5"


def test_candidate_total_adds_every_runs_candidates():
    runs = [judged_hybrid([1, 7], [candidate(1, 7)] * 3), judged_hybrid([3, 8], [candidate(3, 8)] * 4)]
    assert il.candidate_total(runs) == 7


def test_far_reading_count_counts_images_read_up_close_as_the_far_digit():
    runs = [
        judged_hybrid([1, 7], [candidate(1, 1), candidate(1, 7), candidate(7, 1)]),  # far 1: read_2 == 1 twice
        judged_hybrid([3, 8], [candidate(3, 8), candidate(8, 3)]),  # far 3: read_2 == 3 once
    ]
    assert il.far_reading_count(runs) == 3
    assert il.far_reading_count(runs[1:]) == 1


def sweep_run(tmp_path: Path) -> RunRecord:
    pairs = [["a 1", "a 7"], ["a 3", "a 8"]]
    points = [{"sigma": 0.875, "kernel_size": 15}, {"sigma": 2.0, "kernel_size": 33}]
    rows = [{"sigma": point["sigma"], "kernel_size": point["kernel_size"], "pair": pair,
             "both_count": 10 * index + pair, "far_reads_far": pair + 1, "near_reads_near": 2 - pair}
            for index, point in enumerate(points) for pair in range(2)]
    selected = [rows[2], rows[1]]  # hybrid 0 at sigma 2, hybrid 1 at sigma 0.875
    images = {str(point["sigma"]): torch.zeros(4, 1, 4, 4) for point in points}
    return make_run("parta/hybrid-sweep", params={"pairs": pairs, "sweep": points, "candidates": 2},
                    metrics={"rows": list(reversed(rows)), "selected": selected, "data_range": [-1.0, 1.0]},
                    directory=tmp_path, files={"sweep.pt": {"images": images, "lowpass": images}})


def test_sweep_table_has_a_row_per_sigma_a_column_per_hybrid_and_marks_the_pick(tmp_path):
    sweep = sweep_run(tmp_path)
    assert il.hybrid_sweep_headers(sweep) == ["σ (kernel)", 'far "a 1" / near "a 7"', 'far "a 3" / near "a 8"']
    assert il.hybrid_sweep_rows(sweep) == [
        ["0.875 (15)", "**0 / 2** work; far reads far 1, near reads near 2",
         "★ **1 / 2** work; far reads far 2, near reads near 1"],
        ["2 (33)", "★ **10 / 2** work; far reads far 1, near reads near 2",
         "**11 / 2** work; far reads far 2, near reads near 1"],
    ]
    assert il.sweep_works_at(sweep, 2.0) == (21, 4) and il.sweep_works_at(sweep, 0.875) == (1, 4)


def test_sweep_grid_shows_each_candidate_up_close_and_from_afar(tmp_path):
    width, height = png_size(il.hybrid_sweep_grid(sweep_run(tmp_path), 1))
    assert width > height  # 4 columns (2 candidates, 2 views) by 2 rows (sigmas)


def test_hybrid_table_is_pair_kernel_sigma_and_works_n_of_n():
    run = make_run("parta/hybrid", params={"candidates": 8},
                   metrics={"kernel_size": 29, "sigma": 1.75, "judge": {"both_count": 3}})
    assert il.HYBRID_TABLE_HEADERS == ["hybrid", "kernel", "σ", "works"]
    assert il.hybrid_table_rows([run], ['far "a 1" / near "a 7"']) == [['far "a 1" / near "a 7"', "29", "1.75", "3 of 8"]]


# --- stage II -----------------------------------------------------------------------------------


@pytest.fixture
def written(monkeypatch):
    """What Page.figure writes, kept in a dict instead of the mkdocs build."""
    files = {}
    monkeypatch.setattr(page_module, "write_file", lambda path, data: files.__setitem__(path, data))
    return files


def test_stage2_figures_lay_out_a_finished_upsample_run(ctx, tmp_path, written):
    page = Page("part-a/test.md", "Test", ctx)
    backend = SimpleNamespace(stage2_label="a test upsampler")
    source = make_run("parta/samples")
    upsample = make_run(
        "parta/stage2-upsample", params={"prompts": ["a 7", "a 7", ""], "view": "rot180"},
        metrics={"data_range": [-1.0, 1.0]}, directory=tmp_path,
        files={"upsampled.pt": {"images": torch.zeros(3, 3, 16, 16), "viewed": torch.zeros(3, 3, 16, 16)}},
    )
    stage2 = pa.Stage2Figures(page, backend, [])
    stage2.add(source, None, ["x"], "Nothing")
    assert written == {}
    stage2.add(source, upsample, ["A", "B", "C"], "The samples")
    assert list(written) == ["part-a/img/test/figure-1.png"]
    assert ('The samples, upsampled to 16×16 by stage II (a test upsampler), conditioned on "" (unconditional), '
            '"a 7".') in page.markdown()


def upsample_handle(upsample_figures: bool):
    return SimpleNamespace(upsample_figures=upsample_figures)


@pytest.fixture
def upsample_calls(monkeypatch):
    """The arguments each stage II run would have been started with, instead of starting it."""
    calls = []

    def record(ctx, handle, source, images, prompts, view=None):
        calls.append({"source": source, "images": images, "prompts": prompts, "view": view})
        return "the upsample run"

    monkeypatch.setattr(parta_upsample, "upsampled", record)
    return calls


def test_figure_upsample_starts_nothing_when_the_build_does_not_upsample(ctx, upsample_calls):
    source = make_run("parta/samples")
    assert parta_upsample.figure_upsample(ctx, upsample_handle(False), source, [torch.zeros(3, 4, 4)], [""]) is None
    assert upsample_calls == []


def test_figure_upsample_stacks_the_images_into_one_batch(ctx, upsample_calls):
    source = make_run("parta/samples")
    images = [torch.zeros(3, 4, 4), torch.ones(1, 3, 4, 4)]
    run = parta_upsample.figure_upsample(ctx, upsample_handle(True), source, images, ("a 1", "a 2"), "flip")
    assert run == "the upsample run"
    (call,) = upsample_calls
    assert call["images"].shape == (2, 3, 4, 4) and call["images"][1].eq(1).all() and call["images"][0].eq(0).all()
    assert call["prompts"] == ["a 1", "a 2"] and call["view"] == "flip" and call["source"] is source


def test_sdedit_upsample_sends_the_edits_in_i_start_order_with_the_runs_prompt(ctx, tmp_path, upsample_calls):
    edits = {i: torch.full((1, 3, 4, 4), float(i)) for i in (5, 1, 3, 7)}
    run = make_run("parta/sdedit", params={"prompt": "a 3"}, metrics={"shown_i_starts": [1, 3, 5]},
                   directory=tmp_path, files={"sdedit.pt": {"original": torch.zeros(1, 3, 4, 4), "edits": edits}})
    assert parta_upsample.sdedit_upsample(ctx, upsample_handle(False), run) is None
    assert parta_upsample.sdedit_upsample(ctx, upsample_handle(True), run) == "the upsample run"
    (call,) = upsample_calls
    assert call["images"][:, 0, 0, 0].tolist() == [1.0, 3.0, 5.0]
    assert call["prompts"] == ["a 3"] * 3 and call["view"] is None


def test_inpainting_upsample_sends_the_result_with_the_runs_prompt(ctx, tmp_path, upsample_calls):
    run = make_run("parta/inpaint", params={"prompt": ""}, directory=tmp_path,
                   files={"inpaint.pt": {"result": torch.full((1, 3, 4, 4), 2.0)}})
    assert parta_upsample.inpainting_upsample(ctx, upsample_handle(False), run) is None
    assert parta_upsample.inpainting_upsample(ctx, upsample_handle(True), run) == "the upsample run"
    (call,) = upsample_calls
    assert call["images"].shape == (1, 3, 4, 4) and call["images"].eq(2).all() and call["prompts"] == [""]


# --- Part B ---------------------------------------------------------------------------------------


LABELS = {"1": "epoch 1 of 2 (stands in for epoch 1 of 5)", "2": "epoch 2 of 2 (stands in for epoch 5 of 5)"}


def training_run() -> RunRecord:
    return make_run("partb/denoiser-training", metrics={"checkpoint_labels": dict(reversed(LABELS.items()))})


def test_checkpoint_labels_in_epoch_order():
    run = training_run()
    assert pb.last_checkpoint_label(run) == LABELS["2"]
    assert pb.short_checkpoint_label(run, 2) == "epoch 2 of 2"
    assert pb.short_checkpoint_label(make_run(metrics={"checkpoint_labels": {"3": "epoch 3"}}), 3) == "epoch 3"
    assert pb.checkpoint_labels_text(run) == f"{LABELS['1']}; {LABELS['2']}"


def test_denoising_grid_has_a_row_per_kept_checkpoint(tmp_path):
    digits = torch.zeros(3, 1, 4, 4)
    results = make_run("partb/denoiser-results", directory=tmp_path, files={"results.pt": {
        "shown_clean": digits, "shown_noisy": digits, "per_epoch": {"1": digits, "2": digits}}})
    two = png_size(pb.denoising_grid(training_run(), results, 0.5))
    one = png_size(pb.denoising_grid(make_run(metrics={"checkpoint_labels": {"2": "epoch 2"}}), results, 0.5))
    assert two[1] > one[1]


def test_denoiser_table_rows_show_the_best_blur_or_a_dash():
    row = {"sigma": 0.5, "noisy_psnr": 6.0, "denoiser_psnr": 20.123, "denoiser_ssim": 0.91234, "blur_kernel": 5,
           "blur_sigma": 1.5, "blur_psnr": 15.0, "blur_ssim": None}
    results = make_run(metrics={"table": [row, {**row, "sigma": 0.0, "blur_kernel": 0}]})
    rows = pb.denoiser_table_rows(results)
    assert rows[0] == [0.5, "6.00", "20.12", "0.912", "5, 1.5", "15.00", "–"]
    assert rows[1][4] == "–"
    assert len(rows[0]) == len(pb.DENOISER_TABLE_HEADERS)


def test_guidance_label_marks_the_write_ups_and_the_courses_scale():
    assert pb.guidance_label(0.5) == "0.5 (write-up)"
    assert pb.guidance_label(COURSE_GUIDANCE) == f"{COURSE_GUIDANCE:g} (course)"
    assert pb.guidance_label(3.0) == "3"


def test_worst_digit_is_the_lowest_accuracy_and_the_first_on_a_tie():
    assert pb.worst_digit([0.9, 0.8, 0.6, 1.0, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9]) == "2 (60%)"
    assert pb.worst_digit([0.9, 0.5, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]) == "1 (50%)"


def _reference(**metrics):
    real = {"frechet_floor": 2.0, "train_accuracy_of_pick": 0.995, "confident_fraction": 0.98,
            "class_shares": [0.1] * 10, "test_accuracy": 0.99}
    return make_run("partb/judge-reference", params={"count": 1000}, metrics={**real, **metrics})


def _sweep_row(scale, accuracy, distance, confident=0.9):
    return {"guidance_scale": scale, "judge_accuracy": accuracy, "per_class_accuracy": [accuracy] * 10,
            "confident_fraction": confident, "frechet_distance": distance, "images_per_s": 10.0, "wall_time_s": 1.0}


def test_guidance_sweep_rows_end_with_the_real_digits():
    accuracy = [1.0] * 10
    accuracy[4] = 0.25
    sweep = make_run("partb/guidance-sweep", metrics={"rows": [
        {"guidance_scale": 0.5, "judge_accuracy": 0.8125, "per_class_accuracy": accuracy, "confident_fraction": 0.5,
         "frechet_distance": 12.345, "images_per_s": 1234.4, "wall_time_s": 1.0},
    ], "steps": 30})
    rows = pb.guidance_sweep_rows(sweep, _reference())
    assert rows[0] == ["0.5 (write-up)", "81.2%", "4 (25%)", "50.0%", "12.35", "6.2×", "1,234"]
    assert rows[1] == ["real training digits (1,000)", "99.5%", "–", "98.0%", "2.00", "1.0×", "–"]
    assert all(len(row) == len(pb.GUIDANCE_SWEEP_HEADERS) for row in rows)


def test_guided_bar_text_says_met_only_when_one_scale_clears_both_parts():
    bar = QualityBar()
    reference = _reference()
    met = make_run("partb/guidance-sweep", metrics={"steps": 30, "rows": [
        _sweep_row(1.0, 0.96, 5.9), _sweep_row(COURSE_GUIDANCE, 0.995, 40.0)]})
    text = pb.guided_bar_text(met, reference, bar)
    assert "**met** at g = 1: 96.0% accuracy at 3.0×" in text
    assert f"**met**: 99.5% accuracy at g = {COURSE_GUIDANCE:g}" in text
    # accurate but too far, close but not accurate: neither scale clears both parts at once
    split = make_run("partb/guidance-sweep", metrics={"steps": 30, "rows": [
        _sweep_row(1.0, 0.90, 4.0), _sweep_row(COURSE_GUIDANCE, 0.98, 40.0)]})
    text = pb.guided_bar_text(split, reference, bar)
    assert "**not met**: no guidance scale" in text
    assert "(the most accurate within it: g = 1, 90.0% at 2.0×)" in text
    assert f"**not met**: 98.0% accuracy at g = {COURSE_GUIDANCE:g}" in text


def _time_runs(rows):
    training = make_run("partb/time-ddpm-training", params={"recipe": {"ema_decay": 0.999, "sample_weights": "ema"}},
                        metrics={"checkpoint_labels": {"1": "epoch 1 of 2 (stands in for 5)", "2": "epoch 2 of 2"}})
    scores = make_run("partb/time-ddpm-scores", metrics={"rows": rows})
    return training, scores


def _score(epoch, weights, confident, shares, distance, steps=300, corrector_snr=None, start="noise"):
    return {"epoch": epoch, "weights": weights, "confident_fraction": confident, "class_shares": shares,
            "frechet_distance": distance, "steps": steps, "corrector_snr": corrector_snr, "start": start,
            "evaluations": 2 * steps - 1 if corrector_snr else steps, "wall_time_s": 1.0}


def test_time_score_rows_and_the_bar_read_the_sampled_weights_of_the_last_checkpoint():
    even = [0.1] * 10
    skewed = [0.3, 0.03] + [0.0834] * 8
    training, scores = _time_runs([
        _score(1, "raw", 0.30, skewed, 100.0), _score(1, "ema", 0.35, skewed, 90.0),
        _score(2, "raw", 0.60, even, 12.0), _score(2, "ema", 0.75, even, 9.0),
    ])
    reference = _reference()
    rows = pb.time_score_rows(scores, reference, training)
    assert rows[0] == ["epoch 1 of 2", "trained", "300 steps", "30.0%", "3.0% (digit 1)", "100.00", "50.0×"]
    assert rows[-1][0] == "real training digits (1,000)" and len(rows) == 5
    text = pb.unguided_bar_text(scores, reference, training, QualityBar())
    assert text.startswith("The bar for unconditional samples is **met** by the EMA weights after epoch 2 of 2")
    assert "75.0% read with confidence ≥ 0.9 (bar: 70.0%), met" in text
    training, scores = _time_runs([_score(2, "raw", 0.9, even, 9.0), _score(2, "ema", 0.69, even, 9.0)])
    text = pb.unguided_bar_text(scores, reference, training, QualityBar())
    assert "is **not met**" in text and "69.0% read with confidence ≥ 0.9 (bar: 70.0%), **not met**" in text
    chart = pb.class_share_chart(scores, reference, training, QualityBar())
    pixels = np.asarray(Image.open(io.BytesIO(chart)).convert("L"))
    assert pixels.shape[1] >= 400 and pixels.min() < 128 < pixels.max(), "a chart with dark marks on a light page"
    _, flat = _time_runs([_score(2, "raw", 0.9, even, 9.0), _score(2, "ema", 0.69, [0.0] * 9 + [1.0], 9.0)])
    assert pb.class_share_chart(flat, reference, training, QualityBar()) != chart, "the bars follow the shares"


def test_the_unguided_bar_is_judged_once_per_sampler_of_the_last_checkpoint():
    even = [0.1] * 10
    training, scores = _time_runs([
        _score(1, "ema", 0.9, even, 2.0, steps=50, corrector_snr=0.16),  # an earlier checkpoint never judges
        _score(2, "ema", 0.75, even, 40.0, steps=100), _score(2, "ema", 0.72, even, 8.0, steps=50, corrector_snr=0.16),
    ])
    reference = _reference()
    assert [row[2] for row in pb.time_score_rows(scores, reference, training)[:3]] == [
        "50 steps + 49 Langevin (r = 0.16)", "100 steps", "50 steps + 49 Langevin (r = 0.16)"]
    first, second = pb.unguided_bar_text(scores, reference, training, QualityBar()).split("\n\n")
    assert first.startswith("The bar for unconditional samples is **not met** by the EMA weights after epoch 2 of 2, "
                            "sampled with 100 steps:")
    assert "the Fréchet distance is 20.0× the real digits' (bar: 5×), **not met**" in first
    assert second.startswith("The bar for unconditional samples is **met** by the EMA weights after epoch 2 of 2, "
                             "sampled with 50 steps + 49 Langevin (r = 0.16):")
    text = pb.scores_sampler_text(make_run("partb/time-ddpm-scores", params={"steps": 100, "corrector_snr": 0.16}), 300)
    assert "`sample-digits --model time --steps 100`" in text
    assert "`sample-digits --model time --steps 50 --corrector-snr 0.16`" in text
    assert "Langevin" not in pb.scores_sampler_text(make_run("partb/time-ddpm-scores", params={"steps": None}), 300)


def test_the_matched_start_row_is_named_judged_and_set_beside_its_twin(monkeypatch):
    from diffusion_lab.mnist.ddpm import DDPMSchedule

    monkeypatch.setattr(pb.partb_models, "ddpm_schedule", lambda run: DDPMSchedule(300))
    even = [0.1] * 10
    training, scores = _time_runs([
        _score(2, "ema", 0.70, even, 40.0, steps=100), _score(2, "ema", 0.72, even, 24.0, steps=50, corrector_snr=0.16),
        _score(2, "ema", 0.74, even, 8.0, steps=100, start="matched"),
    ])
    reference = _reference()
    assert [row[2] for row in pb.time_score_rows(scores, reference, training)[:3]] == [
        "100 steps", "50 steps + 49 Langevin (r = 0.16)", "100 steps, matched start"]
    *_, matched = pb.unguided_bar_text(scores, reference, training, QualityBar()).split("\n\n")
    assert matched.startswith("The bar for unconditional samples is **met** by the EMA weights after epoch 2 of 2, "
                              "sampled with 100 steps, matched start:")
    text = pb.matched_start_text(scores, reference, training)
    assert "\\(\\bar\\alpha_T = 0.048\\)" in text and "= 22% of it" in text
    # compared with the row of the same steps from N(0, I), not with the corrector's
    assert text.endswith("With 100 steps it moves the Fréchet distance from 20.0× to 4.0× the real digits' and the "
                         "confident share from 70.0% to 74.0%.")
    training, scores = _time_runs([_score(2, "ema", 0.70, even, 40.0, steps=100)])
    assert pb.matched_start_text(scores, reference, training) == ""
    params = {"steps": 100, "corrector_snr": None, "matched_start": True}
    text = pb.scores_sampler_text(make_run("partb/time-ddpm-scores", params=params), 300)
    assert "Langevin" not in text and "`sample-digits --model time --steps 100 --start matched`" in text
    params = {"steps": None, "corrector_snr": 0.16, "matched_start": True}
    text = pb.scores_sampler_text(make_run("partb/time-ddpm-scores", params=params), 300)
    assert "`sample-digits --model time --steps 150 --corrector-snr 0.16`" in text
    assert "`sample-digits --model time --start matched`" in text


class _FigureCatcher:
    def __init__(self):
        self.figures = []

    def figure(self, png, caption, runs, **options):
        self.figures.append((png, caption))


def test_the_scored_samples_figure_has_a_row_per_sampler_of_the_last_checkpoint(tmp_path):
    even = [0.1] * 10
    rows = [_score(1, "ema", 0.6, even, 40.0, steps=100), _score(2, "ema", 0.7, even, 30.0, steps=100),
            _score(2, "ema", 0.7, even, 20.0, steps=100, start="matched")]
    training, _ = _time_runs(rows)
    shown = torch.rand(3, 10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    scores = make_run("partb/time-ddpm-scores", metrics={"rows": rows}, directory=tmp_path,
                      files={"shown_samples.pt": shown})
    page = _FigureCatcher()
    pb.scored_samples_figure(page, scores, training)
    (png, caption), = page.figures
    assert caption.startswith("The first 10 of the samples each sampler drew for the table after epoch 2 of 2.")
    wide, tall = png_size(png)
    assert wide > tall > 0  # two rows of ten
    training, scores = _time_runs(rows[:2])
    alone = _FigureCatcher()
    pb.scored_samples_figure(alone, scores, training)
    assert alone.figures == []


def test_optimizer_text_follows_the_recipe():
    quick = get_profile("quick").partb.time_ddpm
    course = replace(quick, lr_schedule="exponential", ema_decay=None, sample_weights="raw", min_snr_gamma=None)
    assert "ExponentialLR" in pb.optimizer_text(course) and "EMA" not in pb.optimizer_text(course)
    extended = replace(course, lr_schedule="one_cycle", learning_rate=4e-3, ema_decay=0.99, sample_weights="ema",
                       min_snr_gamma=5.0)
    text = pb.optimizer_text(extended)
    assert "one-cycle" in text and "to 0.004" in text and "Min-SNR-5" in text
    assert "decay 0.99" in text and "the figures sample the average" in text


def test_how_trained_like_names_every_difference_and_claims_sameness_only_when_true():
    full, quick = get_profile("full").partb, get_profile("quick").partb
    assert pb.how_trained_like(full.class_ddpm, full.time_ddpm, "time-conditioned") == (
        "it is trained exactly like the time-conditioned one")
    sentence = pb.how_trained_like(quick.class_ddpm, quick.time_ddpm, "time-conditioned")
    assert "exactly" not in sentence
    assert sentence.startswith("it starts from the trained time-conditioned model's weights")
    assert "learning rate 0.002 (the time-conditioned one: 0.005)" in sentence
    # a recipe without a subset trains on all 60,000 digits, and the sentence says so in numbers
    assert pb.training_digit_count(replace(quick.time_ddpm, train_subset=None)) == 60_000
    assert quick.class_ddpm.train_subset == 30_000 and quick.time_ddpm.train_subset is None
    assert "training digits 30,000 (the time-conditioned one: 60,000)" in sentence
    assert "width" not in sentence and "p_uncond" not in sentence and "Min-SNR" not in sentence
    changed = replace(quick.class_ddpm, warm_start=False, ema_decay=0.99, beta2=0.03)
    sentence = pb.how_trained_like(changed, quick.time_ddpm, "time-conditioned")
    assert sentence.startswith("it is trained like") and "EMA decay 0.99 (the time-conditioned one: none)" in sentence
    assert "β_T 0.03 (the time-conditioned one: 0.02)" in sentence
