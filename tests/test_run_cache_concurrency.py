"""The run cache shared by several processes at once: builds computing the same runs, with and
without FORCE, and builds killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from diffusion_lab.runcache import entries, runs

SRC = Path(__file__).resolve().parents[1] / "src"

# One worker: calls cached_run on a few keys until its time is up, FORCE on a share of its calls,
# and checks every record it gets against what the run computes. Without FORCE the keys change
# every 0.2 s (the same for every worker), so that the workers keep racing to publish fresh keys.
WORKER = r"""
import dataclasses, random, sys, time
import torch
torch.set_num_threads(1)
from pathlib import Path
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import cached_run
from diffusion_lab.seeding import make_generator

cache, seconds, force_share, worker = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0, cache_dir=cache, force=False)
forced = dataclasses.replace(ctx, force=True)
expected = torch.randn(256, generator=make_generator(0, "hammer/values"))

def compute(scratch):
    scratch.save("values.pt", torch.randn(256, generator=scratch.generator("values")))
    scratch.save("nested/params.json", scratch.params)
    time.sleep(random.random() * 0.003)
    return {"n": scratch.params["n"]}

rng = random.Random(worker)
calls, deadline = 0, time.monotonic() + seconds
while time.monotonic() < deadline:
    params = {"n": rng.randrange(3)}
    if force_share == 0:
        params["round"] = int(time.time() / 0.2)
    run = cached_run(forced if rng.random() < force_share else ctx, "hammer", params, compute)
    assert torch.equal(run.load("values.pt"), expected), run.dir
    assert run.load("nested/params.json") == params and run.metrics == {"n": params["n"]}, run.dir
    calls += 1
print(calls)
"""


def hammer(cache: Path, seconds: float, force_share: float, workers: int = 4, src: Path = SRC) -> list:
    """Run `workers` processes on one cache for `seconds`; returns (exit code, stdout, stderr) of each."""
    env = dict(os.environ, PYTHONPATH=str(src))
    processes = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(cache), str(seconds), str(force_share), str(worker)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for worker in range(workers)
    ]
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results.append((process.returncode, stdout, stderr))
    return results


def assert_clean_and_valid(cache: Path) -> int:
    """Every entry valid, one copy per entry, nothing left in tmp/, no .stale leftovers; returns
    the number of entries."""
    published = sorted((cache / "runs").iterdir())
    for entry in published:
        key = json.loads((entry / entries.MANIFEST).read_text())["key"]
        assert entries.read_entry(entry, key)[0] is not None, entry
        copies = sorted(path.name for path in entries.versions_dir(entry).iterdir())
        assert copies == sorted([".lock", Path(os.readlink(entry)).name]), (entry, copies)
    assert not list((cache / "tmp").iterdir()), "leftover scratch folders"
    assert not [path for path in cache.rglob("*") if ".stale" in path.name]
    return len(published)


@pytest.mark.parametrize("force_share", [0.0, 0.5], ids=["without-force", "with-force"])
def test_concurrent_builds_share_a_cache(tmp_path, force_share):
    cache = tmp_path / "cache"
    results = hammer(cache, seconds=3.0, force_share=force_share)
    failed = [stderr[-3000:] for code, _, stderr in results if code != 0]
    assert not failed, failed[0]
    assert sum(int(stdout.strip() or 0) for _, stdout, _ in results) > 20, "the workers barely ran"
    assert assert_clean_and_valid(cache) >= 3
    said = [line for _, _, stderr in results for line in stderr.splitlines() if "recomputing" in line]
    assert not said, "no valid entry is ever judged invalid by a concurrent reader"


KILLED = r"""
import sys, time
import torch
from pathlib import Path
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import cached_run

def compute(scratch):
    scratch.save("partial.pt", torch.zeros(3))
    print("computing", flush=True)
    time.sleep(60)

ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0,
                   cache_dir=Path(sys.argv[1]), force=False)
cached_run(ctx, "killed", {}, compute)
"""


def test_a_killed_runs_scratch_folder_is_cleaned_by_the_next_run(ctx):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    child = subprocess.Popen([sys.executable, "-c", KILLED, str(ctx.cache_dir)], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "computing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    tmp = ctx.cache_dir / "tmp"
    left = list(tmp.iterdir())
    assert [path.name.split("@")[0] for path in left] == [str(child.pid)], left
    live = tmp / f"{os.getpid()}@{left[0].name.split('@')[1]}@abcdef123456-0001"
    live.mkdir()

    record = runs.cached_run(ctx, "other", {}, lambda scratch: {"ok": True})
    assert not record.hit and record.metrics == {"ok": True}
    assert list(tmp.iterdir()) == [live], "the killed run's folder goes, a live run's stays"
