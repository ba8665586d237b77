"""The GPU measurements the repository keeps (measurements/) and the Build page section drawn from them."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace

import pytest
import torch

from diffusion_lab.experiments import gpu_session as gs
from diffusion_lab.profiles import QUALITY_BAR, QualityBar
from diffusion_lab.report import gpu_measurements as gm
from diffusion_lab.report.page import build_page_markdown
from diffusion_lab.runcache.context import BuildContext

KEPT_SESSION = gs.MEASUREMENTS / "2026-11-30-h200-full"


def _run(name: str, metrics: dict, params: dict | None = None, compute_s: float = 1.0) -> dict:
    return {"name": name, "compute_s": compute_s, "device": "cuda (NVIDIA H200)", "seed": 0, "created": "",
            "commit": "", "params": params or {}, "metrics": metrics}


def _session(folder, time_frechet: float, speed_rows: list[dict] | None = None, bar: QualityBar = QUALITY_BAR):
    """A session folder: a judge floor of 10, one time-DDPM score row at `time_frechet`, a log with two
    builds, `bar` stored as the bar of commit abc1234."""
    folder.mkdir()
    shares = [0.1] * 10
    runs = [
        _run("partb/judge-reference", {"frechet_floor": 10.0, "class_shares": shares, "confident_fraction": 0.99,
                                       "train_accuracy_of_pick": 1.0, "test_accuracy": 0.99}, {"count": 1000}),
        _run("partb/time-ddpm-training", {"checkpoint_labels": {"20": "epoch 20 of 20"}}, {"recipe": {}}, 150.0),
        _run("partb/time-ddpm-scores", {"rows": [{"epoch": 20, "weights": "raw", "steps": 300, "evaluations": 300,
                                                  "corrector_snr": None, "confident_fraction": 0.9,
                                                  "class_shares": shares, "frechet_distance": time_frechet,
                                                  "wall_time_s": 1.0}]}),
    ]
    (folder / "runs.json").write_text(json.dumps(runs))
    (folder / "session-1.log").write_text("[0 s] commit x\n[20 s] site build (full, mnist), at most 400 s\n"
                                          "[420 s] site build exit 124 (cut)\n")
    (folder / "session-2.log").write_text("[10 s] site build (full, mnist), at most 200 s\n[105 s] site build exit 0\n")
    (folder / "gpu_usage.csv").write_text("t0, 100 MiB, 20 %\nt1, 7203 MiB, 80 %\nnvidia-smi: gone\n")
    if speed_rows is not None:
        (folder / "train_speed.json").write_text(json.dumps({"device": "GPU", "torch": "2.11", "rows": speed_rows}))
    (folder / gs.SESSION_FILE).write_text(json.dumps({
        "what": "a test session", "device": "GPU", "date": "2026-01-01", "profile": "full", "tree": "abc1234", "script": "s.sh",
        "quality_bar": asdict(bar), "quality_bar_commit": "abc1234",
        "calls": [{"log": "session-1.log"}, {"log": "session-2.log"}]}))
    return folder


def _speed_row(model: str, variant: str, projected_s: float, status: str = "ok") -> dict:
    return {"model": model, "variant": variant, "status": status, "images_per_s": 1000.0, "projected_s": projected_s,
            "setup_s": 0.0, "recipe_steps": 100}


def test_build_parts_pair_each_start_with_its_exit():
    log = ("[27 s] site build (full, mnist), at most 423 s\n[30 s] something else\n"
           "[450 s] site build exit 124 (124: cut)\n[460 s] site build (full, mnist), at most 9 s\n"
           "[470 s] site build exit 0\n")
    assert gs.build_parts(log) == [gs.BuildPart(423, 124), gs.BuildPart(10, 0)]
    assert gs.build_parts("[5 s] site build exit 0\n") == []  # an exit without a start is not a build


def test_gpu_usage_reads_peak_memory_and_mean_load_and_skips_other_lines(tmp_path):
    folder = _session(tmp_path / "s", 30.0)
    assert gs.gpu_usage(folder / "gpu_usage.csv") == (7203.0, 50.0)
    (tmp_path / "empty.csv").write_text("")
    assert gs.gpu_usage(tmp_path / "empty.csv") == (None, None)


@pytest.mark.parametrize("frechet, verdict", [(40.0, "**met**"), (60.0, "**not met**")])
def test_the_unconditional_bar_is_judged_from_the_sessions_own_scores(tmp_path, frechet, verdict):
    # floor 10: 4x passes the 5x bar, 6x fails it
    markdown = gm.session_markdown(gs.load_session(_session(tmp_path / "s", frechet)))
    assert f"is {verdict} by the trained weights" in markdown
    assert f"{frechet / 10:.1f}× the real digits'" in markdown


def test_the_bar_stored_with_the_session_judges_it_not_todays(tmp_path):
    """The same scores (4x the real digits' distance) against two stored bars: met under a 5x bar,
    not met under a 3x one, whatever profiles.QUALITY_BAR says now; the page names the bar's commit."""
    lenient = gs.load_session(_session(tmp_path / "lenient", 40.0))
    strict = gs.load_session(_session(tmp_path / "strict", 40.0, bar=replace(QUALITY_BAR, unguided_frechet_ratio=3.0)))
    assert strict.bar.unguided_frechet_ratio == 3.0 and strict.bar_commit == "abc1234"
    assert "is **met** by the trained weights" in gm.session_markdown(lenient)
    assert "is **not met** by the trained weights" in gm.session_markdown(strict)
    assert "is **not met** by the trained weights" in gm.unguided_on_gpu_text("part-b/x.md", [strict])
    assert "judged by the quality bar of `abc1234`, stored with the session" in gm.session_markdown(strict)


def test_a_session_without_its_bar_is_refused(tmp_path):
    folder = _session(tmp_path / "s", 30.0)
    info = json.loads((folder / gs.SESSION_FILE).read_text())
    del info["quality_bar"]["guided_accuracy"]
    (folder / gs.SESSION_FILE).write_text(json.dumps(info))
    with pytest.raises(gs.MeasurementError, match="session.json: a session stores the quality bar"):
        gs.load_session(folder)


def test_build_section_adds_the_calls_and_says_which_was_cut(tmp_path):
    markdown = gm.build_section(gs.load_session(_session(tmp_path / "s", 30.0)))
    assert "400 s until the call's time limit cut it; then 95 s (finished); 495 s in all" in markdown
    assert "at most 7.0 GiB" in markdown and "mean utilization 50%" in markdown


def test_training_totals_count_the_write_up_models_and_skip_incomplete_variants(tmp_path):
    rows = [_speed_row(model, "eager_fp32", seconds) for model, seconds in
            (("time_ddpm", 90), ("class_ddpm", 110), ("time_flow", 500), ("denoiser", 20))]
    rows += [_speed_row("time_ddpm", "cuda_graph", 30), _speed_row("class_ddpm", "cuda_graph", 0, status="error"),
             _speed_row("denoiser", "cuda_graph", 10)]
    markdown = gm.training_speed_section(json.loads(json.dumps({"device": "GPU", "torch": "2.11", "rows": rows})))
    assert "would train in: eager fp32 220 s." in markdown  # the flow model is not one of the write-up's three
    assert "CUDA graph of the whole step" in markdown.split("would train in")[0]  # a column, but no total


def test_a_broken_session_file_names_itself(tmp_path):
    folder = _session(tmp_path / "s", 30.0)
    (folder / "runs.json").write_text("{not json")
    with pytest.raises(gs.MeasurementError, match="runs.json"):
        gs.load_session(folder)


def test_no_measurements_folder_means_no_section(tmp_path):
    assert gs.load_sessions(tmp_path / "absent") == []
    assert gm.gpu_measurements_markdown([]) == ""


def test_the_build_page_links_the_section_only_when_there_is_one(tmp_path):
    ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0, cache_dir=tmp_path,
                       force=False)
    with_section = build_page_markdown(ctx, [], environment=_NoLock(), store_measurements="",
                                       gpu_measurements="## Measured on a GPU, not by this build\n")
    without = build_page_markdown(ctx, [], environment=_NoLock(), gpu_measurements="", store_measurements="")
    with_store = build_page_markdown(ctx, [], environment=_NoLock(), gpu_measurements="",
                                     store_measurements="## Builds served by a shared store\n")
    assert with_store.rstrip().endswith("## Builds served by a shared store")
    assert "(#measured-on-a-gpu-not-by-this-build)" in with_section
    assert with_section.rstrip().endswith("## Measured on a GPU, not by this build")
    assert "measured-on-a-gpu" not in without
    assert "computed it.\n\nThis build runs on " in without  # the device line, a paragraph of its own
    assert "did not compute.\n\nThis build runs on " in with_section
    assert all("kept them).\n\n| | |" in page for page in (with_section, without))  # tables stay tables


class _NoLock:
    lock = None


def test_the_kept_h200_session_reads_as_recorded():
    session = gs.load_session(KEPT_SESSION)
    assert session.build_parts == [gs.BuildPart(423, 124), gs.BuildPart(95, 0)]
    assert session.memory_peak_mib == 7203.0
    assert {run.device for run in session.runs} == {"cuda (NVIDIA H200)"}
    assert session.if_fp16["summary"]["max_ours_vs_pipeline"] == 0.0
    markdown = gm.gpu_measurements_markdown([session])
    # The time DDPM's table: one row per score row of the session, in order, with its checkpoint,
    # sampler and confident share in their own cells, then the real digits.
    table = [line.split(" | ") for line in markdown.splitlines() if line.startswith(("| epoch", "| real"))][:4]
    assert [(cells[0], cells[2], cells[3]) for cells in table] == [
        ("| epoch 5 of 20", "300 steps", "71.6%"), ("| epoch 20 of 20", "300 steps", "86.6%"),
        ("| epoch 20 of 20", "150 steps + 149 Langevin (r = 0.16)", "88.4%"),
        ("| real training digits (1,000)", "–", "98.8%")]
    scores = session.run("partb/time-ddpm-scores").metrics["rows"]
    assert [round(100 * row["confident_fraction"], 1) for row in scores] == [71.6, 86.6, 88.4]
    # Judged by the bar of the tree it ran, stored with it: at 300 steps met (3.8x within 5x), with
    # the corrector not (7.8x); the guided bar not met (g = 1: 94.2% at 2.4x), the course's g met.
    assert session.bar_commit == "57d5f87" and session.bar == QualityBar(
        confident=0.70, smallest_share=0.04, unguided_frechet_ratio=5.0, guided_accuracy=0.95,
        guided_frechet_ratio=3.0, course_guidance_accuracy=0.99)
    verdicts = [line.split(":")[0] for line in markdown.splitlines() if line.startswith("The bar for unconditional")]
    assert verdicts == ["The bar for unconditional samples is **met** by the trained weights after epoch 20 of 20, "
                        "sampled with 300 steps",
                        "The bar for unconditional samples is **not met** by the trained weights after epoch 20 of 20, "
                        "sampled with 150 steps + 149 Langevin (r = 0.16)"]
    assert "(the most accurate within it: g = 1, 94.2% at 2.4×)" in markdown
    assert "judged by the quality bar of `57d5f87`, stored with the session" in markdown


def test_a_session_folder_copied_elsewhere_still_renders(tmp_path):
    copy = tmp_path / KEPT_SESSION.name
    shutil.copytree(KEPT_SESSION, copy)
    assert f"Its files are in `{KEPT_SESSION.name}/`" in gm.session_markdown(gs.load_session(copy))


def test_the_b2_page_text_links_the_build_page_and_judges_the_sessions_scores(tmp_path):
    session = gs.load_session(_session(tmp_path / "s", 40.0))
    text = gm.unguided_on_gpu_text("part-b/time-conditioned-ddpm.md", [session])
    assert "[Build page](../build.md#measured-on-a-gpu-not-by-this-build)" in text
    assert ("built on an GPU on 2026-01-01 at `abc1234` and judged by the quality bar of `abc1234`, stored with "
            "the session ([Build page]" in text and "not computed by this build" in text)
    assert "is **met** by the trained weights" in text
    assert gm.unguided_on_gpu_text("part-b/x.md", []) == ""
    assert gm.guided_on_gpu_text("part-b/x.md", [session]) == ""  # the session has no guidance sweep


def test_the_session_summary_stores_the_bar_it_is_judged_by(tmp_path):
    """benchmarks/gpu_summary.py writes the tree's bar and commit into session.json, keeping what
    the file holds, and loading the session reads that bar back."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_summary.py"
    spec = importlib.util.spec_from_file_location("gpu_summary", path)
    summary = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summary)
    session = tmp_path / gs.SESSION_FILE
    session.write_text(json.dumps({"what": "a session", "device": "NVIDIA H100"}))
    summary.store_bar(session, "abc1234")
    info = json.loads(session.read_text())
    assert info["what"] == "a session" and info["device"] == "NVIDIA H100"
    assert gs.stored_bar(info, session) == (QUALITY_BAR, "abc1234")
