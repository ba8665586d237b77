"""The run cache shared by several processes at once: builds computing the same runs, with and
without FORCE, and builds killed mid-run."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import torch
from filelock import FileLock, Timeout

from diffusion_lab.runcache import entries, runs

SRC = Path(__file__).resolve().parents[1] / "src"

# One worker: waits until every worker is ready (so that all of them run at once, however long each
# took to import torch), then calls cached_run a fixed number of times on a few keys, FORCE on a
# share of its calls, and checks every record it gets against what the run computes. Without FORCE
# the keys change every 10 calls (the same for every worker), so that the workers keep racing to
# publish fresh keys. No clock decides anything.
WORKER = r"""
import dataclasses, random, sys, time
import torch
torch.set_num_threads(1)
from pathlib import Path
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import cached_run
from diffusion_lab.seeding import make_generator

cache, calls, force_share, worker = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
workers, gate = int(sys.argv[5]), Path(sys.argv[6])
ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0, cache_dir=cache, force=False)
forced = dataclasses.replace(ctx, force=True)
expected = torch.randn(256, generator=make_generator(0, "hammer/values"))

def compute(scratch):
    scratch.save("values.pt", torch.randn(256, generator=scratch.generator("values")))
    scratch.save("nested/params.json", scratch.params)
    time.sleep(random.random() * 0.003)
    return {"n": scratch.params["n"]}

rng = random.Random(worker)
(gate / f"ready-{worker}").touch()
while len(list(gate.iterdir())) < workers:
    time.sleep(0.001)
done = 0
for call in range(calls):
    params = {"n": rng.randrange(3)}
    if force_share == 0:
        params["round"] = call // 10
    run = cached_run(forced if rng.random() < force_share else ctx, "hammer", params, compute)
    assert torch.equal(run.load("values.pt"), expected), run.dir
    assert run.load("nested/params.json") == params and run.metrics == {"n": params["n"]}, run.dir
    done += 1
print(done)
"""


def hammer(cache: Path, calls: int, force_share: float, workers: int = 4, src: Path = SRC) -> list:
    """Run `workers` processes on one cache, `calls` runs each, all started together; returns (exit
    code, stdout, stderr) of each."""
    env = dict(os.environ, PYTHONPATH=str(src))
    gate = cache.parent / f"gate-{uuid.uuid4().hex[:8]}"
    gate.mkdir(parents=True)
    processes = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(cache), str(calls), str(force_share), str(worker),
                          str(workers), str(gate)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for worker in range(workers)
    ]
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results.append((process.returncode, stdout, stderr))
    return results


def assert_clean_and_valid(cache: Path) -> int:
    """Every entry a valid pointer, one copy per entry, nothing left in tmp/ or owners/ (the owner
    locks of processes that ended normally), no .stale leftovers; returns the number of entries."""
    published = sorted((cache / "runs").iterdir())
    for entry in published:
        assert entry.is_file() and not entry.is_symlink(), f"{entry} is not a pointer"
        copy = entries.current_copy(entry)
        key = json.loads((copy / entries.MANIFEST).read_text())["key"]
        assert entries.read_entry(entry, key)[0] is not None, entry
        versions = entries.versions_dir(entry)
        folders = [path.name for path in versions.iterdir() if path.is_dir()]
        others = [path.name for path in versions.iterdir() if not path.is_dir() and path.name != ".lock"]
        assert folders == [copy.name] and not others, (entry, folders, others)
    assert not list((cache / "tmp").iterdir()), "leftover scratch folders"
    assert not list((cache / "owners").iterdir()), "leftover owner locks"
    assert not [path for path in cache.rglob("*") if ".stale" in path.name]
    return len(published)


@pytest.mark.parametrize("force_share", [0.0, 0.5], ids=["without-force", "with-force"])
def test_concurrent_builds_share_a_cache(tmp_path, force_share):
    cache = tmp_path / "cache"
    results = hammer(cache, calls=60, force_share=force_share)
    failed = [stderr[-3000:] for code, _, stderr in results if code != 0]
    assert not failed, failed[0]
    assert [int(stdout.strip() or 0) for _, stdout, _ in results] == [60] * 4, "every worker made all its calls"
    assert assert_clean_and_valid(cache) >= 3
    said = [line for _, _, stderr in results for line in stderr.splitlines() if "recomputing" in line]
    assert not said, "no valid entry is ever judged invalid by a concurrent reader"


# A run that says when it computes, then waits for a line on stdin (or to be killed) to finish.
BLOCKED = r"""
import sys
import torch
from pathlib import Path
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import cached_run

def compute(scratch):
    scratch.save("partial.pt", torch.zeros(3))
    print("computing", flush=True)
    sys.stdin.readline()
    return {"finished": True}

ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0,
                   cache_dir=Path(sys.argv[1]), force=False)
cached_run(ctx, sys.argv[2], {}, compute)
"""


def start_blocked(cache: Path, name: str, script: str = BLOCKED) -> subprocess.Popen:
    """A process computing run `name` in `cache`, stopped in its compute function until a line is
    written to its stdin."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    child = subprocess.Popen([sys.executable, "-c", script, str(cache), name], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "computing"
    return child


def owners_in_tmp(cache: Path) -> list[str]:
    """The pid of the owner of each folder in tmp/."""
    return sorted(path.name.split("@")[0] for path in (cache / "tmp").iterdir())


def test_a_killed_runs_scratch_folder_is_cleaned_by_the_next_run_and_a_live_ones_kept(ctx):
    """The killed process's owner lock is free (the system released it), the live one's is held."""
    killed = start_blocked(ctx.cache_dir, "killed")
    live = start_blocked(ctx.cache_dir, "live")
    try:
        killed.kill()  # SIGKILL here, TerminateProcess on Windows: nothing is cleaned up
        killed.wait(timeout=60)
        assert owners_in_tmp(ctx.cache_dir) == sorted([str(killed.pid), str(live.pid)])

        record = runs.cached_run(ctx, "other", {}, lambda scratch: {"ok": True})
        assert not record.hit and record.metrics == {"ok": True}
        assert owners_in_tmp(ctx.cache_dir) == [str(live.pid)], "the killed run's folder goes, a live run's stays"
        assert [path.name.split("@")[0] for path in (ctx.cache_dir / "owners").iterdir()] == [str(live.pid)]

        release(live)
    finally:
        live.kill()
        live.wait(timeout=60)
    assert assert_clean_and_valid(ctx.cache_dir) == 2


def release(blocked: subprocess.Popen) -> None:
    """Let a process of `start_blocked` finish its run, and check that it did."""
    blocked.stdin.write("\n")
    blocked.stdin.flush()
    assert blocked.wait(timeout=120) == 0


# --- controlled interleavings: threads of one process, ordered by events --------------------------

def _wait(event: threading.Event) -> None:
    """Wait for a step of the other thread; the limit only turns a hang into a failure."""
    assert event.wait(timeout=300), "the other thread never got there"


def _values(scratch):
    scratch.save("values.pt", torch.randn(100, generator=scratch.generator("values")))
    return {}


def test_a_reader_sees_the_old_copy_then_the_new_one_while_a_force_build_switches(ctx, monkeypatch):
    """Paused just before and just after its os.replace of the pointer, a FORCE writer holds the
    entry's lock, and a reader (no lock) reads a valid copy each time: the old one, then the new."""
    first = runs.cached_run(ctx, "exp", {}, _values)
    before, after, go_on, switched = (threading.Event() for _ in range(4))
    replace = entries._replace

    def paused_replace(source, target):
        before.set()
        _wait(go_on)
        replace(source, target)
        after.set()
        _wait(switched)

    monkeypatch.setattr(entries, "_replace", paused_replace)
    forced = []
    writer = threading.Thread(target=lambda: forced.append(
        runs.cached_run(dataclasses.replace(ctx, force=True), "exp", {}, _values)))
    writer.start()
    try:
        _wait(before)  # the new copy is in versions/, not yet published
        with pytest.raises(Timeout):
            FileLock(entries.versions_dir(first.entry) / ".lock").acquire(timeout=0)
        seen, _ = entries.read_entry(first.entry, first.key)
        assert seen is not None and seen.folder == first.dir
        assert len([path for path in entries.versions_dir(first.entry).iterdir() if path.is_dir()]) == 2
        go_on.set()
        _wait(after)  # published, the old copy not yet set aside
        seen, _ = entries.read_entry(first.entry, first.key)
        assert seen is not None and seen.folder != first.dir and first.dir.is_dir()
    finally:
        go_on.set()
        switched.set()
        writer.join()
    assert forced[0].dir == seen.folder and not first.dir.exists()
    assert assert_clean_and_valid(ctx.cache_dir) == 1


@pytest.mark.parametrize("force", [False, True], ids=["without-force", "with-force"])
def test_two_writers_that_computed_one_run_leave_one_copy(ctx, force):
    """Both compute before either publishes (a barrier in the compute function): without FORCE the
    second to publish takes the first's copy; with FORCE the second replaces it."""
    both_computed = threading.Barrier(2)

    def compute(scratch):
        scratch.save("values.pt", torch.full((3,), float(threading.get_ident() % 1000)))
        both_computed.wait(timeout=300)
        return {"writer": threading.get_ident()}

    context = dataclasses.replace(ctx, force=force)
    records = {}
    writers = [threading.Thread(target=lambda: records.update({threading.get_ident(): runs.cached_run(
        context, "exp", {}, compute)})) for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert len(records) == 2 and not any(record.hit for record in records.values())
    published = entries.read_entry(next(iter(records.values())).entry, next(iter(records.values())).key)[0]
    winner = published.manifest["metrics"]["writer"]
    for ident, record in records.items():
        expected = winner if force else record.metrics["writer"]
        assert torch.equal(record.load("values.pt"), torch.full((3,), float(expected % 1000))), (force, ident)
    if not force:
        assert {record.metrics["writer"] for record in records.values()} == {winner}, "both use the first copy"
    assert assert_clean_and_valid(ctx.cache_dir) == 1
