"""Part B's expensive runs computed side by side, before the pages ask for them.

On a CPU, one training or sampling process uses the cores badly: the width-32 UNets are too small
for many threads to share one convolution well (a second thread adds far less than a second core:
`MEASURED["thread_speedup"]`), so a build first runs the heavy runs below (`JOBS`)
in worker processes (lanes), each job as soon as the jobs whose runs it reads are done (which those
are follows from the runs each job asks for: `prefetch_graph`); the page scripts then find them in
the cache. How many lanes, and how many threads each job gets, follow the physical cores
this process may use (`runcache.machine.usable_cores`) by the rule of `prefetch_plan.plan`: one thread
a job, and the cores that would idle shared out among the jobs that start. On the project's 2-core
machines that is two lanes of one thread each. On a GPU, two lanes (`GPU_LANES`) share it: a
width-64 UNet's eager training step at batch 64-128 leaves it idle between kernel launches (a CUDA
graph of the whole step, which launches once, trained several times as fast in the H200 session:
measurements/2026-11-30-h200-full/train_speed.json), and a second process's kernels fill those gaps.

A run's result does not depend on which process computed it, nor on how many lanes ran beside it:
only on its thread count, since oneDNN may sum a convolution's gradient in another order with
another number of threads. The plan fixes each job's threads before any job starts, from the cores
and the cache's state alone, and every run's manifest records its threads and the lanes
(`runcache.runs.EXECUTION`). Every run that a worker computed is still listed as computed by this
build (`runcache.runs.COMPUTED_THIS_BUILD`). While the jobs run, `prefetch_progress.Progress` shows
jobs done of total and the time left; each worker's own output goes to a log file in the cache
folder (`logs/prefetch-<job>.log`), so two workers' progress bars never fight over one line.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
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
from diffusion_lab.experiments.partb_flow import (
    constant_lr_samples,
    constant_lr_scores,
    flow_samples,
    flow_scores,
    pure_noise_results,
)
from diffusion_lab.experiments.partb_training import (
    constant_lr_flow_training,
    ddpm_training,
    denoiser_training,
    flow_training,
    pure_noise_training,
)
from diffusion_lab.experiments.prefetch_graph import after, touched_runs
from diffusion_lab.experiments.prefetch_plan import Plan, Speedup, critical_seconds, fixed_starts, plan
from diffusion_lab.experiments.prefetch_progress import Progress
from diffusion_lab.runcache import runs
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.machine import usable_cores

Compute = Callable[[BuildContext], object]


# Measured data (with date, commit and machine): each job's seconds in a cold quick build, and what a
# second thread adds to a UNet's training. They order the queue and scale the time-left estimate.
MEASURED = json.loads((Path(__file__).with_name("prefetch_measured.json")).read_text())


def measured_speedup(images_per_s: dict[str, float] = MEASURED["thread_speedup"]["images_per_s"]) -> Speedup:
    """Amdahl's parallel share p from one- and two-thread speeds: s(2) = 1 / ((1 - p) + p / 2)."""
    ratio = images_per_s["2"] / images_per_s["1"]
    return Speedup(parallel=min(1.0, max(0.0, 2.0 * (1.0 - 1.0 / ratio))))


@dataclass(frozen=True)
class Job:
    """Runs one worker computes in order (`compute`), once the jobs named in `after`, whose runs
    they read, are done; `after` is derived for a build (`ordered`), not given. `seconds`: what it
    took in a cold quick build in a one-thread worker on the reference machine (`MEASURED`); it
    orders the queue and scales the time-left estimate."""

    compute: Compute
    seconds: float = 0.0
    after: tuple[str, ...] = ()

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


def _constant_lr_flow(ctx):
    constant_lr_flow_training(ctx, progress=False)


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
    constant_lr_scores(ctx)
    constant_lr_samples(ctx)


def _time_comparison(ctx):
    comparison(ctx, False)


def _class_comparison(ctx):
    comparison(ctx, True)


JOBS: tuple[Job, ...] = tuple(
    Job(compute, MEASURED["job_seconds"]["seconds"][compute.__name__.lstrip("_")])
    for compute in (_time_ddpm, _class_ddpm, _time_flow, _class_flow, _constant_lr_flow, _judge, _denoisers,
                    _pure_noise, _ddpm_scores, _time_ddpm_figures, _class_ddpm_figures, _guidance_sweep,
                    _flow_measurements, _time_comparison, _class_comparison)
)


def ordered(ctx: BuildContext, jobs: tuple[Job, ...] | None = None) -> tuple[Job, ...]:
    """`jobs` (default: `JOBS`) with the jobs each comes after for `ctx`'s build: those owning a run
    it touches (`prefetch_graph`; traced, nothing is computed or read)."""
    jobs = JOBS if jobs is None else jobs
    graph = after(touched_runs(ctx, {job.name: job.compute for job in jobs}))
    return tuple(replace(job, after=graph[job.name]) for job in jobs)


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


def _run_job(ctx: BuildContext, compute: Compute, threads: int | None = None, lanes: int = 1,
             log: Path | None = None) -> tuple[list[str], list[str]]:
    """`compute` (in a worker: with `threads` threads, beside `lanes` - 1 others, its output into
    `log`); returns the keys of the runs this process computed meanwhile, and of those it read
    from the shared store."""
    if threads is not None:
        torch.set_num_threads(threads)
    runs.EXECUTION.update(lanes=lanes)
    if log is not None:
        _output_to(log)
    before = set(runs.computed_keys()) | set(runs.fetched_keys())
    compute(ctx)
    return ([key for key in runs.computed_keys() if key not in before],
            [key for key in runs.fetched_keys() if key not in before])


def _output_to(log: Path) -> None:
    """Send this worker's stdout and stderr (progress bars, warnings) to `log`, from the file
    descriptors up, so that C++ libraries' messages go there too."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            os.dup2(handle.fileno(), stream.fileno())


# On a GPU the lanes share the card, not the cores: a second process fills the gaps between one
# process's kernel launches (module docstring). Two is what the H200 session ran with
# (measurements/2026-11-30-h200-full); no other count has been measured.
GPU_LANES = 2


def _gpu_layout(pending: dict[str, Job], cores: int) -> Plan:
    """GPU_LANES lanes, each job with its share of the cores' threads (for what runs on the CPU)."""
    return Plan({name: max(1, cores // GPU_LANES) for name in pending}, GPU_LANES, 0.0)


def _log_path(ctx: BuildContext, name: str) -> Path:
    return ctx.cache_dir / "logs" / f"prefetch-{name}.log"


def prefetch(ctx: BuildContext, cores: int | None = None, stream=None) -> list[str]:
    """Compute the runs of `JOBS` that are not cached, in worker processes that share `cores`
    physical cores (default: `usable_cores()`; and, on CUDA, the GPU), each job as soon as the jobs
    it comes after are done, the one with the longest chain ahead of it first, with the threads the
    plan gives it (`prefetch_plan.plan`). A lone missing job runs here, with every core's thread.
    Nothing happens on a single core: the pages compute their runs themselves. Returns the keys
    computed. Progress (jobs done of total, time left) goes to `stream` (default: stderr)."""
    cores = usable_cores() if cores is None else cores
    if cores < 2:
        return []
    jobs = ordered(ctx)  # refuses a run that two jobs could compute, before any work
    chain = critical_seconds(jobs)  # also refuses circles and unknown names before any work
    pending = {job.name: job for job in jobs if _missing(ctx, job.compute)}
    done = {job.name for job in jobs} - set(pending)
    if not pending:
        return []
    if len(pending) == 1:
        job = next(iter(pending.values()))
        print(f"prefetch: {job.name}, the one job not cached, runs in this process with {cores} threads",
              file=stream or sys.stderr, flush=True)
        return _run_job(ctx, job.compute, threads=cores)[0]
    speedup = measured_speedup()
    layout = plan(jobs, cores, speedup, done=done) if ctx.device.type == "cpu" else _gpu_layout(pending, cores)
    progress = Progress(jobs, layout.threads, cores, speedup, done=sorted(done), stream=stream)
    computed: list[str] = []
    running: dict[Future, str] = {}
    busy = 0
    with ProcessPoolExecutor(max_workers=layout.lanes, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        while pending or running:
            ready = sorted((name for name, job in pending.items() if done.issuperset(job.after)),
                           key=lambda name: -chain[name])
            for name in fixed_starts(ready, layout.threads, cores - busy, len(running), layout.lanes):
                future = pool.submit(_run_job, ctx, pending.pop(name).compute, layout.threads[name], layout.lanes,
                                     _log_path(ctx, name))
                running[future] = name
                busy += layout.threads[name]
                progress.started(name)
            if not running:  # critical_seconds has ruled out circles, so something is always ready
                raise RuntimeError(f"prefetch: jobs {', '.join(pending)} wait for jobs that never run")
            finished, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
            progress.tick()
            for future in finished:
                name = running.pop(future)
                busy -= layout.threads[name]
                try:
                    keys, fetched = future.result()
                except BaseException:
                    progress.failed(name, str(_log_path(ctx, name)))
                    raise
                computed.extend(keys)
                runs.COMPUTED_THIS_BUILD.update(keys)
                runs.FETCHED_THIS_BUILD.update(fetched)
                done.add(name)
                progress.finished(name)
    progress.close()
    twice = sorted({key[:12] for key in computed if computed.count(key) > 1})
    if twice:
        raise RuntimeError(f"prefetch: runs {', '.join(twice)} were computed by two jobs; a job must ask for "
                           "every run it reads outside its compute functions, so that it comes after the job "
                           "computing it (prefetch_graph)")
    return computed
