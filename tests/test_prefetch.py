"""experiments.prefetch: Part B's expensive runs computed side by side in worker processes, then
read by the pages as this build's own results."""

from __future__ import annotations

import os
import time

import pytest

from diffusion_lab.experiments import prefetch
from diffusion_lab.runcache import runs


def _pid_run(ctx, name: str):
    """A cached run whose metric is the id of the process that computed it."""
    return runs.cached_run(ctx, name, {"what": name}, lambda scratch: {"pid": os.getpid()})


def _job_a(ctx):
    _pid_run(ctx, "test/prefetch-a")


def _job_b(ctx):
    _pid_run(ctx, "test/prefetch-b")


def _slow_job_a(ctx):
    """_job_a's run, computed slowly enough that the other worker is up and busy meanwhile."""
    def compute(scratch):
        time.sleep(5)
        return {"pid": os.getpid()}

    runs.cached_run(ctx, "test/prefetch-a", {"what": "test/prefetch-a"}, compute)


@pytest.fixture
def fresh_build(monkeypatch):
    """An empty COMPUTED_THIS_BUILD and BUILD_LOG for the test, as at the start of a build."""
    monkeypatch.setattr(runs, "COMPUTED_THIS_BUILD", set())
    monkeypatch.setattr(runs, "BUILD_LOG", [])
    monkeypatch.setattr(os, "cpu_count", lambda: 2)


def test_lanes_run_in_parallel_workers_and_pages_read_their_results(ctx, monkeypatch, fresh_build):
    monkeypatch.setattr(prefetch, "STAGES", (((_job_a,), (_job_b,)),))
    keys = prefetch.prefetch(ctx, lanes=2)
    assert len(keys) == 2 and set(keys) == runs.COMPUTED_THIS_BUILD
    a, b = _pid_run(ctx, "test/prefetch-a"), _pid_run(ctx, "test/prefetch-b")
    pids = {a.metrics["pid"], b.metrics["pid"]}
    assert os.getpid() not in pids and len(pids) == 2  # two workers, not this process
    assert not a.hit and not b.hit  # computed by this build, so not listed as an old cache entry


def test_force_computes_a_prefetched_run_once(ctx, monkeypatch, fresh_build):
    monkeypatch.setattr(prefetch, "STAGES", (((_job_a,), (_job_b,)),))
    forced = ctx.__class__(**{**ctx.__dict__, "force": True})
    prefetch.prefetch(forced, lanes=2)
    assert _pid_run(forced, "test/prefetch-a").metrics["pid"] != os.getpid()


def test_a_stage_with_one_lane_of_work_runs_here_and_cached_runs_are_skipped(ctx, monkeypatch, fresh_build):
    _job_a(ctx)  # cached before the build
    monkeypatch.setattr(prefetch, "STAGES", (((_job_a,), (_job_b,)),))
    keys = prefetch.prefetch(ctx, lanes=2)
    assert len(keys) == 1 and _pid_run(ctx, "test/prefetch-b").metrics["pid"] == os.getpid()


def test_two_lanes_computing_the_same_run_is_an_error(ctx, monkeypatch, fresh_build):
    monkeypatch.setattr(prefetch, "STAGES", (((_slow_job_a,), (_slow_job_a,)),))
    with pytest.raises(RuntimeError, match="computed by two lanes"):
        prefetch.prefetch(ctx, lanes=2)


def test_nothing_runs_with_one_lane_or_one_core(ctx, monkeypatch, fresh_build):
    monkeypatch.setattr(prefetch, "STAGES", (((_job_a,), (_job_b,)),))
    assert prefetch.prefetch(ctx, lanes=1) == []
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert prefetch.prefetch(ctx, lanes=2) == []
    with pytest.raises(runs.NotCached), runs.lookup_only():
        _job_a(ctx)


def test_the_real_stages_compute_every_run_once(ctx, fresh_build):
    """The tiny profile's Part B, prefetched into an empty cache: no run computed twice (prefetch
    raises otherwise), and afterwards no job has anything left to compute."""
    keys = prefetch.prefetch(ctx, lanes=2)
    assert keys and len(keys) == len(set(keys))
    assert not any(prefetch._missing(ctx, job) for stage in prefetch.STAGES for lane in stage for job in lane)
