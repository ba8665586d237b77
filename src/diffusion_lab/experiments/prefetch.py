"""Part B's expensive runs computed two at a time, before the pages ask for them.

On a CPU, one training or sampling process uses the cores badly: the width-32 UNets are too small
for two threads to share one convolution well (measured on this project's 2-core machine: one
process with 2 threads trains 660 images/s; two processes with 1 thread each, 440 each, 880 in
all). So a build first runs the independent chains of heavy runs below in `lanes` worker
processes of one thread each, stage after stage; the page scripts then find them in the cache.
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
from concurrent.futures import ProcessPoolExecutor
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

Job = Callable[[BuildContext], object]


def _ddpm_models(ctx):
    ddpm_training(ctx, False, progress=False)
    ddpm_training(ctx, True, progress=False)


def _flow_models(ctx):
    flow_training(ctx, False, progress=False)
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


# Stages run one after the other; a stage's lanes run side by side, each job of a lane in order.
# A job only reads runs of earlier stages or of its own lane, so no two workers ever compute the
# same run. Balanced by the quick profile's measured run times (one-thread workers, cold build of
# 4c73430): DDPM models 433 s + judge 103 | flow models 469 + denoisers 71; DDPM scores 228 |
# flow measurements 87 + pure noise 16 + time DDPM figures 13 + guidance sweep 87; then class
# comparison 75 | time comparison 28 + class DDPM figures 23. The sweep sat in the third stage
# before, where it made that stage 110 s while the second stage's short lane idled 112 s.
STAGES: tuple[tuple[tuple[Job, ...], ...], ...] = (
    ((_ddpm_models, _judge), (_flow_models, _denoisers)),
    ((_ddpm_scores,), (_flow_measurements, _pure_noise, _time_ddpm_figures, _guidance_sweep)),
    ((_class_comparison,), (_time_comparison, _class_ddpm_figures)),
)


def _missing(ctx: BuildContext, job: Job) -> bool:
    """Whether `job` would compute anything (it or a run it reads is not cached)."""
    try:
        with runs.lookup_only():
            job(ctx)
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


def _run_lane(ctx: BuildContext, lane: tuple[Job, ...], threads: int | None = None) -> list[str]:
    """The lane's jobs in order (in a worker: with `threads` threads); returns the keys of the runs
    this process computed."""
    if threads is not None:
        torch.set_num_threads(threads)
    before = set(runs.computed_keys())
    for job in lane:
        started = time.perf_counter()
        print(f"prefetch: {job.__name__.lstrip('_')} ...", file=sys.stderr, flush=True)
        job(ctx)
        print(f"prefetch: {job.__name__.lstrip('_')} ready after {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)
    return [key for key in runs.computed_keys() if key not in before]


def _cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def prefetch(ctx: BuildContext, lanes: int) -> list[str]:
    """Compute the runs of `STAGES` that are not cached, stage by stage, a stage's lanes in parallel
    worker processes that share the CPU's cores (and, on CUDA, the GPU); a stage with work in one
    lane only runs it here, with every thread. Nothing happens for lanes < 2 or on a single core.
    Returns the keys computed."""
    cores = _cores()
    if lanes < 2 or cores < 2:
        return []
    lanes = min(lanes, cores)
    computed: list[str] = []
    with ProcessPoolExecutor(max_workers=lanes, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        for stage in STAGES:
            work = [tuple(job for job in lane if _missing(ctx, job)) for lane in stage]
            work = [lane for lane in work if lane]
            if not work:
                continue
            if len(work) == 1:
                computed.extend(_run_lane(ctx, work[0]))
                continue
            threads = [max(1, cores // len(work))] * len(work)
            for keys in pool.map(_run_lane, [ctx] * len(work), work, threads):
                computed.extend(keys)
                runs.COMPUTED_THIS_BUILD.update(keys)
            twice = sorted({key[:12] for key in computed if computed.count(key) > 1})
            if twice:
                raise RuntimeError(f"prefetch: runs {', '.join(twice)} were computed by two lanes; reorder "
                                   "STAGES so that a run a lane reads comes from an earlier stage or its own lane")
    return computed
