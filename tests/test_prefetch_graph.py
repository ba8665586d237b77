"""experiments.prefetch_graph: which prefetch job comes after which, derived from the runs each job
touches (traced: nothing computed, nothing read)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from diffusion_lab.experiments import prefetch
from diffusion_lab.experiments.partb import time_ddpm_scores
from diffusion_lab.experiments.prefetch_graph import after, touched_runs
from diffusion_lab.runcache import runs
from diffusion_lab.runcache.context import BuildContext

# The graph prefetch.py held by hand until it was derived (its `_AFTER`, at 59eef16). Its comment:
# "The class-conditioned models start from the time-conditioned ones (warm_start), so they come after
# them; everything that judges samples comes after the judge."
HAND_WRITTEN = {
    "time_ddpm": (),
    "class_ddpm": ("time_ddpm",),
    "time_flow": (),
    "class_flow": ("time_flow",),
    "judge": (),
    "denoisers": (),
    "pure_noise": (),
    "ddpm_scores": ("time_ddpm", "judge"),
    "time_ddpm_figures": ("time_ddpm",),
    "class_ddpm_figures": ("class_ddpm",),
    "guidance_sweep": ("class_ddpm", "judge"),
    "flow_measurements": ("time_flow", "class_flow", "judge"),
    "time_comparison": ("time_ddpm", "time_flow", "judge"),
    "class_comparison": ("class_ddpm", "class_flow", "judge"),
}
# Added since: the time-conditioned flow model at a constant learning rate trains on its own, and the
# flow measurements score and sample it too.
HAND_WRITTEN = {**HAND_WRITTEN, "constant_lr_flow": (),
                "flow_measurements": HAND_WRITTEN["flow_measurements"] + ("constant_lr_flow",)}
WARM_START_EDGES = {("class_ddpm", "time_ddpm"), ("class_flow", "time_flow")}


def _context(profile: str, cache_dir) -> BuildContext:
    return BuildContext(profile=profile, backend="mnist", device=torch.device("cpu"), seed=0,
                        cache_dir=cache_dir, force=False)


def _graph(ctx) -> dict[str, tuple[str, ...]]:
    return {job.name: job.after for job in prefetch.ordered(ctx)}


def _edges(graph) -> set[tuple[str, str]]:
    return {(job, before) for job, befores in graph.items() for before in befores}


def _closure(graph) -> set[tuple[str, str]]:
    """Every (job, job it waits for, directly or through others)."""
    edges = _edges(graph)
    while True:
        more = edges | {(a, c) for a, b in edges for b2, c in edges if b == b2}
        if more == edges:
            return edges
        edges = more


def test_the_derived_graph_is_the_hand_written_one_where_the_recipes_warm_start(tmp_path):
    """Quick's class-conditioned models start from the time-conditioned ones: the derived graph
    orders the jobs as the hand-written one did (same waits, direct or through other jobs), and
    adds only edges that were implied (a class model's figures wait for the time model too)."""
    ctx = _context("quick", tmp_path / "cache")
    assert ctx.recipes.partb.class_ddpm.warm_start and ctx.recipes.partb.class_flow.warm_start
    graph = _graph(ctx)
    assert _edges(graph) >= _edges(HAND_WRITTEN)
    assert _closure(graph) == _closure(HAND_WRITTEN)


def test_on_tiny_the_class_models_no_longer_wait_for_the_time_models(ctx):
    """tiny (and full) start the class-conditioned models from scratch, so they need not wait for
    the time-conditioned ones; every other edge is the hand-written one, exactly."""
    assert not ctx.recipes.partb.class_ddpm.warm_start and not ctx.recipes.partb.class_flow.warm_start
    assert _edges(_graph(ctx)) == _edges(HAND_WRITTEN) - WARM_START_EDGES


def _planted(ctx):
    """A new job reading the DDPM scores' run, as experiment code reads one: through the function."""
    scores = time_ddpm_scores(ctx)
    runs.cached_run(ctx, "test/planted", {"scores": scores.key}, lambda scratch: None)


def test_a_planted_job_reading_another_jobs_run_comes_after_it(ctx, monkeypatch):
    """It comes after the job computing the scores, and after the jobs whose runs those read (it
    touches them too); no other job's place changes."""
    without = _graph(ctx)
    monkeypatch.setattr(prefetch, "JOBS", prefetch.JOBS + (prefetch.Job(_planted),))
    graph = _graph(ctx)
    assert graph.pop("planted") == ("time_ddpm", "judge", "ddpm_scores")
    assert graph == without


def _run(ctx, name: str):
    return runs.cached_run(ctx, name, {"what": name}, lambda scratch: None)


def _maker(ctx):
    _run(ctx, "test/made")


def _reader(ctx):
    _run(ctx, "test/made")
    _run(ctx, "test/own")


def _rival(ctx):
    _run(ctx, "test/made")


def test_a_job_comes_after_the_job_owning_a_run_it_touches(ctx):
    touched = touched_runs(ctx, {"reader": _reader, "maker": _maker})
    assert {name for name, _ in touched["reader"]} == {"test/made", "test/own"}
    assert after(touched) == {"reader": ("maker",), "maker": ()}


def test_two_jobs_touching_a_run_with_equally_few_runs_are_refused(ctx):
    touched = touched_runs(ctx, {"maker": _maker, "rival": _rival, "reader": _reader})
    with pytest.raises(ValueError, match="test/made .* is touched by jobs maker and rival, 1 runs each"):
        after(touched)


def test_a_tie_among_the_real_jobs_is_refused_before_any_work(ctx, monkeypatch):
    """A second job that computes the judge and its reference, as the judge job does."""
    monkeypatch.setattr(prefetch, "JOBS", prefetch.JOBS + (prefetch.Job(_judge_again),))
    with pytest.raises(ValueError, match="touched by jobs judge and judge_again"):
        prefetch.prefetch(ctx, cores=2)
    assert not ctx.cache_dir.exists()


def _judge_again(ctx):
    prefetch._judge(ctx)


def _reads_metrics_outside(ctx):
    scores = time_ddpm_scores(ctx)
    runs.cached_run(ctx, "test/rows", {"rows": len(scores.metrics["rows"])}, lambda scratch: None)


def test_a_job_reading_results_outside_a_compute_function_is_named(ctx):
    with pytest.raises(runs.TracingError, match="prefetch job rows: the metrics of partb/time-ddpm-scores"):
        touched_runs(ctx, {"rows": _reads_metrics_outside})


def _snapshot(folder) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            for path in sorted(folder.rglob("*"))}


def test_deriving_the_graph_trains_nothing_and_leaves_the_cache_as_it_was(ctx, monkeypatch):
    """With a cache holding one of the jobs' runs (the denoisers, trained for real first): no run is
    computed, read or logged, and not a byte of the cache changes."""
    monkeypatch.setattr(runs, "BUILD_LOG", [])
    prefetch._denoisers(ctx)
    before, logged = _snapshot(ctx.cache_dir), list(runs.BUILD_LOG)

    def refuse(*args, **kwargs):
        raise AssertionError("a run was computed while the graph was derived")

    monkeypatch.setattr(runs, "_compute", refuse)
    monkeypatch.setattr(runs, "read_entry", refuse)
    for profile in ("tiny", "quick", "full"):
        _graph(_context(profile, ctx.cache_dir))
    assert runs.BUILD_LOG == logged and runs.computed_keys() == [record.key for record in logged]
    assert _snapshot(ctx.cache_dir) == before
