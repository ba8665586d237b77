"""The run cache without POSIX-only calls, as on Windows: no `fcntl`, no symbolic links, no signals.

Each process below hides them before it imports the package: `import fcntl` fails, `os.symlink` is
gone and `os.kill` raises (and is recorded). `filelock` is imported first and keeps its native lock
(flock here, LockFileEx on Windows: the system releases both when their process ends), which is
what the cache relies on; hidden are the calls the cache's own code would need on POSIX only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from test_run_cache_concurrency import (
    BLOCKED,
    SRC,
    assert_clean_and_valid,
    owners_in_tmp,
    release,
    start_blocked,
)

from diffusion_lab.runcache import entries

WITHOUT_POSIX = r"""
import errno, os, sys
import filelock, torch  # filelock picks its native lock before fcntl is hidden
torch.set_num_threads(1)
sys.modules["fcntl"] = None  # `import fcntl` raises ImportError from here on
del os.symlink
KILLS = []

def no_signals(pid, sig):
    KILLS.append((pid, sig))
    raise OSError(errno.EINVAL, "signals are not available here")

os.kill = no_signals
"""

# Runs the cache through a miss, a hit and a FORCE replacement, cleaning the scratch folder of a
# killed process and keeping that of a live one on the way.
CHECK = WITHOUT_POSIX + r"""
import dataclasses
from pathlib import Path
from diffusion_lab.runcache import entries
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import cached_run

cache, killed, live = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0, cache_dir=cache, force=False)
forced = dataclasses.replace(ctx, force=True)

def compute(scratch):
    scratch.save("values.pt", torch.randn(100, generator=scratch.generator("values")))
    return {"n": 1}

def tmp_owners():
    return sorted(name.split("@")[0] for name in os.listdir(cache / "tmp"))

assert tmp_owners() == sorted([killed, live]), tmp_owners()
stored = cached_run(ctx, "portable", {"a": 1}, compute)
assert not stored.hit and tmp_owners() == [live], tmp_owners()
assert stored.entry.is_file() and not stored.entry.is_symlink(), "published as a pointer file"
read = cached_run(ctx, "portable", {"a": 1}, compute)
assert read.hit and read.dir == stored.dir and torch.equal(read.load("values.pt"), stored.load("values.pt"))
replaced = cached_run(forced, "portable", {"a": 1}, compute)
assert not replaced.hit and replaced.dir != stored.dir and not stored.dir.exists()
assert torch.equal(replaced.load("values.pt"), stored.load("values.pt")), "a record follows its entry"
assert [path.name for path in entries.versions_dir(stored.entry).iterdir() if path.is_dir()] == [replaced.dir.name]
assert cached_run(ctx, "portable", {"a": 1}, compute).hit
assert sys.modules["fcntl"] is None and not hasattr(os, "symlink")
assert not KILLS, f"os.kill was called: {KILLS}"
print("ok")
"""

BLOCKED_WITHOUT_POSIX = WITHOUT_POSIX + BLOCKED + 'assert not KILLS, f"os.kill was called: {KILLS}"\n'


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=600)


def test_the_cache_works_without_fcntl_links_or_signals(tmp_path):
    cache = tmp_path / "cache"
    killed = start_blocked(cache, "killed", script=BLOCKED_WITHOUT_POSIX)
    live = start_blocked(cache, "live", script=BLOCKED_WITHOUT_POSIX)
    try:
        killed.kill()
        killed.wait(timeout=60)
        checked = _run(CHECK, str(cache), str(killed.pid), str(live.pid))
        assert checked.returncode == 0 and checked.stdout.strip() == "ok", checked.stderr[-3000:]
        assert owners_in_tmp(cache) == [str(live.pid)]
        release(live)
    finally:
        live.kill()
        live.wait(timeout=60)
    assert assert_clean_and_valid(cache) == 2


def test_the_cache_module_imports_without_fcntl():
    done = _run(WITHOUT_POSIX + "from diffusion_lab.runcache import entries, runs\nprint('imported')\n")
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr[-3000:]


def test_folders_of_earlier_versions_are_judged_by_pid_on_posix_only(monkeypatch):
    """Folders named `pid@host@...` (no owner lock) come from versions that ran on POSIX only; on
    Windows os.kill(pid, 0) would send CTRL_C_EVENT, so it is never called there."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = ended.stdout.strip()
    assert entries._pid_has_ended(pid) and not entries._pid_has_ended(str(os.getpid()))
    calls = []
    monkeypatch.setattr(entries.os, "kill", lambda *args: calls.append(args))
    monkeypatch.setattr(entries.os, "name", "nt")
    assert not entries._pid_has_ended(pid) and not calls


def test_a_folder_of_this_process_is_never_cleaned(ctx):
    """A thread's scratch folder survives another thread's cleaning: this process holds its owner lock."""
    scratch = entries.new_scratch(ctx.cache_dir, "label", "exp")
    try:
        entries.clean_dead_scratch(ctx.cache_dir)
        assert scratch.is_dir()
        assert [path.name for path in (ctx.cache_dir / "owners").iterdir()] == [f"{entries._owner()}.lock"]
        assert scratch.name.startswith(f"{os.getpid()}@{socket.gethostname()}@")
    finally:
        entries.end_scratch(scratch)
    assert not scratch.exists() and not list((ctx.cache_dir / "owners").iterdir())
