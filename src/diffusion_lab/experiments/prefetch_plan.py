"""How Part B's prefetch jobs share a machine's cores: how many lanes (worker processes), how many
threads each job gets, and when the build can expect them to end.

The rule, decided before any job starts and so the same on every run of the same machine with the
same cache (`plan`): the jobs are laid out by list scheduling over their measured one-thread seconds,
the ready job with the longest chain of jobs behind it first (`critical_seconds`); a job takes one
core, and where more cores are free than ready jobs, the free cores are shared out among the jobs
that start (the longest chains first), up to the most threads that still pay (`Speedup.most_threads`:
each thread at least a tenth faster), the rest left for jobs that become ready later. A job's thread
count is then fixed: the real queue (`experiments.prefetch`) starts jobs in the same order as they
become ready, each with its planned threads, so how a run is computed depends on the machine's
cores and the cache's state, never on which job happened to end first. The lanes are the most jobs
the plan runs at once.

A thread's worth is not a core's: the width-32 UNets are small, and a second thread shortens a
training step by much less than half. `Speedup` models it by Amdahl's law with the parallel share
measured on this project's machines (`prefetch.measured_speedup`, from prefetch_measured.json); the
model only shapes the plan and the estimate of the time left, never a result.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol, Sequence


class PlannedJob(Protocol):
    """What the plan needs of a job: its name, the jobs it comes after, its one-thread seconds."""

    @property
    def name(self) -> str: ...

    after: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class Speedup:
    """How many times faster a job runs with `threads` threads than with one: Amdahl's law,
    1 / ((1 - parallel) + parallel / threads)."""

    parallel: float

    def most_threads(self, least_gain: float = 0.1) -> int:
        """The most threads worth giving one job: the last thread that still makes it at least
        `least_gain` (a tenth) faster than one thread fewer."""
        threads = 1
        while threads < 256 and self(threads + 1) >= (1.0 + least_gain) * self(threads):
            threads += 1
        return threads

    def __post_init__(self):
        if not 0.0 <= self.parallel <= 1.0:
            raise ValueError(f"the parallel share must lie in [0, 1], not {self.parallel}")

    def __call__(self, threads: int) -> float:
        return 1.0 / ((1.0 - self.parallel) + self.parallel / max(1, threads))


@dataclass(frozen=True)
class Slot:
    """One job in a plan: its threads and its start and end in seconds from the plan's start."""

    name: str
    threads: int
    start: float
    end: float


def critical_seconds(jobs: Sequence[PlannedJob]) -> dict[str, float]:
    """For each job, the seconds of the longest chain of jobs that starts with it (itself included):
    how long the build runs after it starts, at the least. The queue starts the longest first.
    Raises ValueError for a job that comes after no job, or jobs that wait for each other in a circle."""
    later: dict[str, list[str]] = {job.name: [] for job in jobs}
    for job in jobs:
        for name in job.after:
            if name not in later:
                raise ValueError(f"job {job.name} comes after {name!r}, which is no job: {', '.join(later)}")
            later[name].append(job.name)
    seconds = {job.name: job.seconds for job in jobs}
    chain: dict[str, float] = {}

    def longest(name: str, path: tuple[str, ...] = ()) -> float:
        if name in path:
            raise ValueError(f"jobs wait for each other in a circle: {' -> '.join((*path, name))}")
        if name not in chain:
            chain[name] = seconds[name] + max((longest(n, (*path, name)) for n in later[name]), default=0.0)
        return chain[name]

    for name in later:
        longest(name)
    return chain


def share_cores(free: int, jobs: int, most: int) -> list[int]:
    """`free` cores shared out among `jobs` jobs that start together, one at least and `most` at
    most each, the first jobs (the longest chains) taking the remainder: e.g. 7 cores, 3 jobs ->
    [3, 2, 2]; cores beyond `most` a job stay free for the jobs that become ready later."""
    base, extra = divmod(max(free, jobs), jobs)
    return [min(most, base + (i < extra)) for i in range(jobs)]


def fixed_starts(ready: Sequence[str], threads: Mapping[str, int], free: int, running: int,
                 lanes: int | None = None) -> list[str]:
    """Which `ready` jobs (longest chain first) start now with their fixed `threads`: each that finds
    its threads among the `free` cores, or the first when nothing runs, while fewer than `lanes`
    jobs run (`running` of them before). The real queue and its simulation start jobs by this rule."""
    starting: list[str] = []
    for name in ready:
        if lanes is not None and running + len(starting) >= lanes:
            break
        if threads[name] <= free or running + len(starting) == 0:
            starting.append(name)
            free -= threads[name]
    return starting


def simulate(jobs: Sequence[PlannedJob], cores: int, speedup: Speedup, *,
             threads: Mapping[str, int] | None = None, done: Iterable[str] = (),
             running: Mapping[str, tuple[float, int]] | None = None, scale: float = 1.0) -> list[Slot]:
    """The queue's course on `cores` cores, as `experiments.prefetch` runs it, when each job takes
    `seconds * scale / speedup(threads)`.

    threads: each job's fixed thread count (the real queue's); None chooses them by the rule
        (free cores shared among the jobs that start, `share_cores`).
    done: jobs already finished (their runs are cached); they are left out.
    running: jobs already running, by name: (seconds they still need, threads they hold).
    Returns the slots of the running and pending jobs, in the order they start."""
    chain = critical_seconds(jobs)
    by_name = {job.name: job for job in jobs}
    finished = set(done)
    running = dict(running or {})
    pending = [job.name for job in jobs if job.name not in finished and job.name not in running]
    slots = [Slot(name, held, 0.0, left) for name, (left, held) in running.items()]
    ends = [(slot.end, slot.name, slot.threads) for slot in slots]
    heapq.heapify(ends)
    now, free = 0.0, cores - sum(held for _, held in running.values())
    while pending or ends:
        ready = sorted((name for name in pending if finished.issuperset(by_name[name].after)),
                       key=lambda name: -chain[name])
        if threads is None:
            starting = ready[: max(0, free)] if free > 0 else ([] if ends else ready[:1])
            shares = share_cores(max(free, 1), len(starting), speedup.most_threads()) if starting else []
        else:
            starting = fixed_starts(ready, threads, free, running=len(ends))
            shares = [threads[name] for name in starting]
        for name, share in zip(starting, shares):
            pending.remove(name)
            end = now + by_name[name].seconds * scale / speedup(share)
            slots.append(Slot(name, share, now, end))
            heapq.heappush(ends, (end, name, share))
            free -= share
        if not ends:
            raise RuntimeError(f"prefetch: jobs {', '.join(pending)} wait for jobs that never run")
        now, name, share = heapq.heappop(ends)
        finished.add(name)
        free += share
        while ends and ends[0][0] <= now:
            _, other, held = heapq.heappop(ends)
            finished.add(other)
            free += held
    return slots


@dataclass(frozen=True)
class Plan:
    """Threads per job and the lanes (worker processes) that carry them."""

    threads: dict[str, int]
    lanes: int
    seconds: float  # when the plan's last job ends, in the jobs' measured (reference) seconds


def plan(jobs: Sequence[PlannedJob], cores: int, speedup: Speedup, done: Iterable[str] = ()) -> Plan:
    """The rule (module docstring) for the jobs not in `done` on `cores` cores."""
    slots = simulate(jobs, cores, speedup, done=done)
    return Plan({slot.name: slot.threads for slot in slots}, max([1] + [_at_once(slots, slot.start) for slot in slots]),
                max((slot.end for slot in slots), default=0.0))


def _at_once(slots: Sequence[Slot], moment: float) -> int:
    """How many of `slots` run at `moment`: started and not yet ended, or started then (a job of
    no measured seconds still takes a lane)."""
    return sum(slot.start <= moment < slot.end or slot.start == moment for slot in slots)
