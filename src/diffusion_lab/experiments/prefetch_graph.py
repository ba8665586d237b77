"""Which prefetch job comes after which, derived from the runs each job touches, never written by hand.

A job is a piece of experiment code, and experiment code already says which runs it reads: an
experiment function calls the upstream experiment functions to name their keys among its own
parameters (`partb.time_ddpm_scores` calls `ddpm_training` and `judge_reference`) before it asks for
its own run. Called under `runcache.runs.tracing()`, a job computes and reads nothing and lists the
runs it asks for (`touched_runs`): milliseconds for all of Part B, on a cold cache or a warm one.

A run's owner, the job that computes it, is the job touching it with the fewest runs (`owners`): a
job that computes a run touches that run and what it reads, and a job that reads it touches those
and its own runs besides. Where two jobs touch it with equally few, which of them computes it is not
clear from the runs alone, and the graph is refused. Job J comes after job K when J touches a run
that K owns (`after`); the graph follows the profile's recipes (a class-conditioned model that
starts from the time-conditioned one, `warm_start`, touches that model's run, so its job comes after
that job only where the recipe says so).

Runs that a compute function asks for while it computes (inside it) are not seen by the trace; the
queue's last check (`prefetch.prefetch`: no run computed by two jobs) stands behind them.
"""

from __future__ import annotations

from typing import Callable, Mapping

from diffusion_lab.runcache import runs
from diffusion_lab.runcache.context import BuildContext

Run = tuple[str, str]  # (name, key)


def touched_runs(ctx: BuildContext, computes: Mapping[str, Callable[[BuildContext], object]]) -> dict[str, frozenset[Run]]:
    """Each job's runs, by job name: what its compute asks cached_run for, traced (nothing is
    computed, read or logged). A job that reads an upstream run's results outside a compute
    function cannot be traced: TracingError, naming the job."""
    touched = {}
    for name, compute in computes.items():
        with runs.tracing() as asked:
            try:
                compute(ctx)
            except runs.TracingError as error:
                raise runs.TracingError(f"prefetch job {name}: {error}") from error
        touched[name] = frozenset(asked)
    return touched


def owners(touched: Mapping[str, frozenset[Run]]) -> dict[Run, str]:
    """Each run's owner: of the jobs touching it, the one that touches the fewest runs. Raises
    ValueError where two jobs tie for it."""
    owner: dict[Run, str] = {}
    for run in sorted(set().union(*touched.values())):
        fewest = min(len(runs_of) for runs_of in touched.values() if run in runs_of)
        jobs = [job for job, runs_of in touched.items() if run in runs_of and len(runs_of) == fewest]
        if len(jobs) > 1:
            raise ValueError(f"the run {run[0]} ({run[1][:12]}) is touched by jobs {' and '.join(jobs)}, "
                             f"{fewest} runs each: which of them computes it is unclear; let one job compute it "
                             "and the others touch more runs")
        owner[run] = jobs[0]
    return owner


def after(touched: Mapping[str, frozenset[Run]]) -> dict[str, tuple[str, ...]]:
    """For each job, the jobs it comes after (those owning a run it touches), in the jobs' order."""
    owner = owners(touched)
    order = list(touched)
    return {job: tuple(sorted({owner[run] for run in runs_of} - {job}, key=order.index))
            for job, runs_of in touched.items()}
