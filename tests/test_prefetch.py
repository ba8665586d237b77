"""experiments.prefetch: Part B's expensive runs computed side by side in worker processes, then
read by the pages as this build's own results."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

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
    monkeypatch.setattr(prefetch, "_cores", lambda: 2)


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
    monkeypatch.setattr(prefetch, "_cores", lambda: 1)
    assert prefetch.prefetch(ctx, lanes=2) == []
    with pytest.raises(runs.NotCached), runs.lookup_only():
        _job_a(ctx)


def test_the_real_stages_compute_every_run_once(ctx, fresh_build):
    """The tiny profile's Part B, prefetched into an empty cache: no run computed twice (prefetch
    raises otherwise), and afterwards no job has anything left to compute."""
    keys = prefetch.prefetch(ctx, lanes=2)
    assert keys and len(keys) == len(set(keys))
    assert not any(prefetch._missing(ctx, job) for stage in prefetch.STAGES for lane in stage for job in lane)


def _sleeping_job(ctx):
    """Writes this worker's pid into $PREFETCH_TEST_PIDS, then works for a long time."""
    (Path(os.environ["PREFETCH_TEST_PIDS"]) / str(os.getpid())).touch()
    time.sleep(120)


def _other_sleeping_job(ctx):
    _sleeping_job(ctx)


_KILLED_BUILD = """
import sys
sys.path.insert(0, {tests!r})
import torch, test_prefetch
from pathlib import Path
from diffusion_lab.experiments import prefetch
from diffusion_lab.runcache.context import BuildContext
prefetch.STAGES = (((test_prefetch._sleeping_job,), (test_prefetch._other_sleeping_job,)),)
prefetch._missing = lambda ctx, job: True
prefetch._cores = lambda: 2
ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0,
                   cache_dir=Path({cache!r}), force=False)
prefetch.prefetch(ctx, 2)
"""


def test_workers_end_when_the_build_is_killed(tmp_path):
    import signal
    import subprocess

    pids = tmp_path / "pids"
    pids.mkdir()
    script = _KILLED_BUILD.format(tests=os.path.dirname(__file__), cache=str(tmp_path / "cache"))
    build = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PREFETCH_TEST_PIDS": str(pids)})
    try:
        deadline = time.monotonic() + 60
        while len(os.listdir(pids)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [int(name) for name in os.listdir(pids)]
        assert len(workers) == 2, "the two lanes never started"
    finally:
        build.send_signal(signal.SIGKILL)
        build.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "a worker outlived the killed build"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by init) counts as ended
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"
