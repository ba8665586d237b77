"""Part B's expensive runs computed two at a time, before the pages ask for them.

On a CPU, one training or sampling process uses the cores badly: the width-32 UNets are too small
for two threads to share one convolution well (measured on this project's 2-core machine: one
process with 2 threads trains 660 images/s; two processes with 1 thread each, 440 each, 880 in
all). So a build first runs the heavy runs below (`JOBS`) in `lanes` worker processes of one
thread each, each job as soon as the runs it reads are there; the page scripts then find them in
the cache. A job queue, not fixed stages: in the cold build of 01d837f the two lanes of each stage
idled 29 s, 25 s and 5 s waiting for each other.
On CUDA the same lanes share the GPU: a width-64 UNet at batch 64-128 leaves it idle between
kernel launches, and a second process's kernels fill those gaps. Measured on an H200 (the full
profile, measurements/2026-11-30-h200-full): the four UNets trained in 140-150 s each, two at a
time, about as long as each takes alone (141-166 s projected by benchmarks/bench_partb_train.py).

A run's result does not depend on which process computed it, except through the thread count:
oneDNN may sum a convolution's gradient in another order with another number of threads, so a
model trained here is bit-identical to one trained by a one-thread process with the same seed,
and close to (not bit-identical with) one trained with more threads. Every run that a worker
computed is still listed as computed by this build (`runcache.runs.COMPUTED_THIS_BUILD`).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

import torch

from diffusion_lab.experiments.judge_training import judge_training
from diffusion_lab.experiments.partb import (
    ddpm_samples,
    denoiser_results,
    guidance_sweep,
    judge_reference,
    time_ddpm_scores,
)
from diffusion_lab.experiments.partb_compare import comparison
from diffusion_lab.experiments.partb_flow import flow_samples, flow_scores, pure_noise_results
from diffusion_lab.experiments.partb_training import (
    ddpm_training,
    denoiser_training,
    flow_training,
    pure_noise_training,
)
from diffusion_lab.runcache import runs
from diffusion_lab.runcache.context import BuildContext

Compute = Callable[[BuildContext], object]


@dataclass(frozen=True)
class Job:
    """Runs one worker computes in order (`compute`), once the jobs named in `after`, whose runs
    they read, are done. `seconds`: what it took in a cold quick build, in a one-thread worker on
    this project's 2-core machine (5231af6, 2026-11-30: 1,665 s in all, and the queue's order would
    end them after 837 s, against 833 for a perfect split); it only orders the queue."""

    compute: Compute
    after: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.compute.__name__.lstrip("_")


def _time_ddpm(ctx):
    ddpm_training(ctx, False, progress=False)


def _class_ddpm(ctx):
    ddpm_training(ctx, True, progress=False)


def _time_flow(ctx):
    flow_training(ctx, False, progress=False)


def _class_flow(ctx):
    flow_training(ctx, True, progress=False)


def _judge(ctx):
    judge_training(ctx, progress=False)
    judge_reference(ctx)


def _denoisers(ctx):
    denoiser_training(ctx, progress=False)
    denoiser_results(ctx)


def _pure_noise(ctx):
    pure_noise_training(ctx, progress=False)
    pure_noise_results(ctx)


def _ddpm_scores(ctx):
    time_ddpm_scores(ctx)


def _guidance_sweep(ctx):
    guidance_sweep(ctx)


def _time_ddpm_figures(ctx):
    ddpm_samples(ctx, False)


def _class_ddpm_figures(ctx):
    ddpm_samples(ctx, True)


def _flow_measurements(ctx):
    flow_scores(ctx, False)
    flow_scores(ctx, True)
    flow_samples(ctx, False)
    flow_samples(ctx, True)


def _time_comparison(ctx):
    comparison(ctx, False)


def _class_comparison(ctx):
    comparison(ctx, True)


# The class-conditioned models start from the time-conditioned ones (warm_start), so they come after
# them; everything that judges samples comes after the judge.
JOBS: tuple[Job, ...] = (
    Job(_time_ddpm, seconds=282),
    Job(_class_ddpm, ("time_ddpm",), 150),
    Job(_time_flow, seconds=289),
    Job(_class_flow, ("time_flow",), 152),
    Job(_judge, seconds=103),
    Job(_denoisers, seconds=60),
    Job(_pure_noise, seconds=14),
    Job(_ddpm_scores, ("time_ddpm", "judge"), 229),
    Job(_time_ddpm_figures, ("time_ddpm",), 12),
    Job(_class_ddpm_figures, ("class_ddpm",), 21),
    Job(_guidance_sweep, ("class_ddpm", "judge"), 123),
    Job(_flow_measurements, ("time_flow", "class_flow", "judge"), 117),
    Job(_time_comparison, ("time_ddpm", "time_flow", "judge"), 30),
    Job(_class_comparison, ("class_ddpm", "class_flow", "judge"), 83),
)


def critical_seconds(jobs: tuple[Job, ...]) -> dict[str, float]:
    """For each job, the seconds of the longest chain of jobs that starts with it (itself included):
    how long the build runs after it starts, at the least. The queue starts the longest first."""
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


def _missing(ctx: BuildContext, compute: Compute) -> bool:
    """Whether `compute` would compute anything (a run it makes or reads is not cached)."""
    try:
        with runs.lookup_only():
            compute(ctx)
    except runs.NotCached:
        return True
    return False


def _exit_with_parent(parent: int) -> None:
    """In a worker: end this process when the build that started it is gone (killed, not just
    interrupted), instead of computing on for nobody."""
    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _run_job(ctx: BuildContext, compute: Compute, threads: int | None = None) -> list[str]:
    """`compute` (in a worker: with `threads` threads); returns the keys of the runs this process
    computed meanwhile."""
    if threads is not None:
        torch.set_num_threads(threads)
    before = set(runs.computed_keys())
    name = compute.__name__.lstrip("_")
    started = time.perf_counter()
    print(f"prefetch: {name} ...", file=sys.stderr, flush=True)
    compute(ctx)
    print(f"prefetch: {name} ready after {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return [key for key in runs.computed_keys() if key not in before]


def _cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def prefetch(ctx: BuildContext, lanes: int) -> list[str]:
    """Compute the runs of `JOBS` that are not cached in `lanes` worker processes that share the CPU's
    cores (and, on CUDA, the GPU), each job as soon as the jobs it comes after are done, the one
    with the longest chain ahead of it first (`critical_seconds`); a lone missing job runs here,
    with every thread. Nothing happens for lanes < 2 or on a single core. Returns the keys computed.

    How many threads compute a job depends on the cache's state alone, never on which job ended
    first: one, unless it is the only missing job. So a cold build computes every run the same way
    on any machine."""
    cores = _cores()
    if lanes < 2 or cores < 2:
        return []
    lanes = min(lanes, cores)
    chain = critical_seconds(JOBS)
    pending = {job.name: job for job in JOBS if _missing(ctx, job.compute)}
    done = {job.name for job in JOBS} - set(pending)
    if len(pending) == 1:
        return _run_job(ctx, next(iter(pending.values())).compute)
    computed: list[str] = []
    running: dict[Future, str] = {}
    with ProcessPoolExecutor(max_workers=lanes, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        while pending or running:
            ready = sorted((job for job in pending.values() if done.issuperset(job.after)),
                           key=lambda job: -chain[job.name])
            for job in ready[: lanes - len(running)]:
                running[pool.submit(_run_job, ctx, pending.pop(job.name).compute, cores // lanes)] = job.name
            if not running:  # critical_seconds has ruled out circles, so something is always ready
                raise RuntimeError(f"prefetch: jobs {', '.join(pending)} wait for jobs that never run")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                keys = future.result()
                computed.extend(keys)
                runs.COMPUTED_THIS_BUILD.update(keys)
                done.add(running.pop(future))
    twice = sorted({key[:12] for key in computed if computed.count(key) > 1})
    if twice:
        raise RuntimeError(f"prefetch: runs {', '.join(twice)} were computed by two jobs; a job must come `after` "
                           "every job whose runs it reads (JOBS)")
    return computed
