"""experiments.prefetch: Part B's expensive runs computed side by side in worker processes, then
read by the pages as this build's own results."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch

from diffusion_lab.experiments import prefetch
from diffusion_lab.experiments.partb_training import denoiser_training
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


def _meet_another_worker(ctx) -> None:
    """Return once two worker processes have both called this (no clock decides it; the minute is
    a guard against a hang): a job that calls it is running while another job is, for certain."""
    gate = ctx.cache_dir.parent / "gate"
    gate.mkdir(exist_ok=True)
    (gate / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(gate.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)


def _meeting_pid_run(ctx, name: str):
    """_pid_run's run, computed only while another worker computes too."""
    def compute(scratch):
        _meet_another_worker(ctx)
        return {"pid": os.getpid()}

    return runs.cached_run(ctx, name, {"what": name}, compute)


def _meeting_job_a(ctx):
    _meeting_pid_run(ctx, "test/prefetch-a")


def _meeting_job_b(ctx):
    _meeting_pid_run(ctx, "test/prefetch-b")


def _gated_job_a(ctx):
    """_job_a's run, asked for inside the compute function of a run of its own (so no trace sees it)
    and computed only once two workers have both begun computing it: two jobs that compute the same
    run, for certain."""
    runs.cached_run(ctx, "test/prefetch-gated", {}, lambda scratch: _meeting_job_a(ctx))


def _other_gated_job_a(ctx):
    runs.cached_run(ctx, "test/prefetch-other-gated", {}, lambda scratch: _meeting_job_a(ctx))


def _job_reading_a(ctx):
    """Reads _job_a's run without computing it (it fails where that run is not there yet)."""
    with runs.lookup_only():
        _pid_run(ctx, "test/prefetch-a")
    _pid_run(ctx, "test/prefetch-c")


def _jobs(*computes):
    return tuple(prefetch.Job(compute) for compute in computes)


@pytest.fixture
def fresh_build(monkeypatch):
    """An empty COMPUTED_THIS_BUILD, FETCHED_THIS_BUILD and BUILD_LOG for the test, as at the start of a build."""
    monkeypatch.setattr(runs, "COMPUTED_THIS_BUILD", set())
    monkeypatch.setattr(runs, "FETCHED_THIS_BUILD", set())
    monkeypatch.setattr(runs, "BUILD_LOG", [])


def test_lanes_run_in_parallel_workers_and_pages_read_their_results(ctx, monkeypatch, fresh_build):
    """Each job waits for the other to be computing: one worker that took both jobs in turn (a
    second worker still starting while a quick first job ended) could not pass."""
    monkeypatch.setattr(prefetch, "JOBS", _jobs(_meeting_job_a, _meeting_job_b))
    keys = prefetch.prefetch(ctx, cores=2)
    assert len(keys) == 2 and set(keys) == runs.COMPUTED_THIS_BUILD
    a, b = _pid_run(ctx, "test/prefetch-a"), _pid_run(ctx, "test/prefetch-b")
    pids = {a.metrics["pid"], b.metrics["pid"]}
    assert os.getpid() not in pids and len(pids) == 2  # two workers, not this process
    assert not a.hit and not b.hit  # computed by this build, so not listed as an old cache entry


def test_force_computes_a_prefetched_run_once(ctx, monkeypatch, fresh_build):
    monkeypatch.setattr(prefetch, "JOBS", _jobs(_job_a, _job_b))
    forced = ctx.__class__(**{**ctx.__dict__, "force": True})
    prefetch.prefetch(forced, cores=2)
    assert _pid_run(forced, "test/prefetch-a").metrics["pid"] != os.getpid()


def test_a_lone_missing_job_runs_here_and_cached_runs_are_skipped(ctx, monkeypatch, fresh_build):
    _job_a(ctx)  # cached before the build
    monkeypatch.setattr(prefetch, "JOBS", _jobs(_job_a, _job_b))
    keys = prefetch.prefetch(ctx, cores=2)
    assert len(keys) == 1 and _pid_run(ctx, "test/prefetch-b").metrics["pid"] == os.getpid()


def test_a_job_starts_only_after_the_jobs_it_reads(ctx, monkeypatch, fresh_build):
    """_job_reading_a would fail in a worker where _job_a's run is not there yet; it is listed first
    and its chain is the longest, so only the derived `after` (it asks for _slow_job_a's run) holds
    it back."""
    monkeypatch.setattr(prefetch, "JOBS", (prefetch.Job(_job_reading_a, 100), prefetch.Job(_slow_job_a, 1),
                                           prefetch.Job(_job_b, 50)))
    assert [job.after for job in prefetch.ordered(ctx)] == [("slow_job_a",), (), ()]
    keys = prefetch.prefetch(ctx, cores=2)
    assert len(keys) == 3
    pids = {name: _pid_run(ctx, f"test/prefetch-{name}").metrics["pid"] for name in "abc"}
    assert os.getpid() not in pids.values()


def test_the_real_jobs_start_with_the_longest_chains(ctx):
    chain = prefetch.critical_seconds(prefetch.ordered(ctx))
    first_two = sorted(chain, key=chain.get, reverse=True)[:2]
    assert set(first_two) == {"time_ddpm", "time_flow"}, chain


def test_two_jobs_computing_the_same_run_is_an_error(ctx, monkeypatch, fresh_build):
    """The queue's last check, behind the derived graph: a run that two jobs ask for only inside
    compute functions is seen by no trace, and the two compute it side by side."""
    monkeypatch.setattr(prefetch, "JOBS", (prefetch.Job(_gated_job_a), prefetch.Job(_other_gated_job_a)))
    assert [job.after for job in prefetch.ordered(ctx)] == [(), ()]
    with pytest.raises(RuntimeError, match="computed by two jobs"):
        prefetch.prefetch(ctx, cores=2)


def test_nothing_runs_on_one_core(ctx, monkeypatch, fresh_build):
    """One usable core (read from the machine when no count is given): the pages compute their runs."""
    monkeypatch.setattr(prefetch, "JOBS", _jobs(_job_a, _job_b))
    assert prefetch.prefetch(ctx, cores=1) == []
    monkeypatch.setattr(prefetch, "usable_cores", lambda: 1)
    assert prefetch.prefetch(ctx) == []
    with pytest.raises(runs.NotCached), runs.lookup_only():
        _job_a(ctx)


def test_the_real_jobs_compute_every_run_once(ctx, fresh_build):
    """The tiny profile's Part B, prefetched into an empty cache: no run computed twice (prefetch
    raises otherwise), and afterwards no job has anything left to compute."""
    keys = prefetch.prefetch(ctx, cores=2)
    assert keys and len(keys) == len(set(keys))
    assert not any(prefetch._missing(ctx, job.compute) for job in prefetch.JOBS)


def test_a_run_is_the_same_whether_lanes_ran_beside_it_or_not(ctx, tmp_path, fresh_build):
    """The denoisers computed by a worker beside another lane, and alone in this process with the
    same one thread, hold the same bytes; the manifest says how many lanes ran."""
    prefetch.prefetch(ctx, cores=2)
    alone = ctx.__class__(**{**ctx.__dict__, "cache_dir": tmp_path / "alone"})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prefetch._run_job(alone, prefetch._denoisers)
    finally:
        torch.set_num_threads(threads)
    beside, solo = denoiser_training(ctx, progress=False), denoiser_training(alone, progress=False)
    assert beside.key == solo.key
    assert _files(beside) == _files(solo)
    assert _manifest(beside)["lanes"] == 2 and _manifest(solo)["lanes"] == 1


def _files(record) -> dict:
    return _manifest(record)["files"]


def _manifest(record) -> dict:
    return json.loads((record.dir / "manifest.json").read_text())


def _sleeping_run(ctx, name: str):
    """A run whose computing writes this worker's pid into $PREFETCH_TEST_PIDS, then works for a long time."""
    def compute(scratch):
        (Path(os.environ["PREFETCH_TEST_PIDS"]) / str(os.getpid())).touch()
        time.sleep(120)

    runs.cached_run(ctx, name, {}, compute)


def _sleeping_job(ctx):
    _sleeping_run(ctx, "test/sleeping")


def _other_sleeping_job(ctx):
    _sleeping_run(ctx, "test/other-sleeping")


_KILLED_BUILD = """
import sys
sys.path.insert(0, {tests!r})
import torch, test_prefetch
from pathlib import Path
from diffusion_lab.experiments import prefetch
from diffusion_lab.runcache.context import BuildContext
prefetch.JOBS = (prefetch.Job(test_prefetch._sleeping_job), prefetch.Job(test_prefetch._other_sleeping_job))
prefetch._missing = lambda ctx, job: True
ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0,
                   cache_dir=Path({cache!r}), force=False)
prefetch.prefetch(ctx, cores=2)
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
