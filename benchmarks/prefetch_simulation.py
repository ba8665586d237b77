"""What the cold quick build's prefetch would take on more cores, simulated from the measured
one-thread seconds of its jobs (`experiments/prefetch_measured.json`) and the measured worth of a
second thread (Amdahl's law, `prefetch_plan.Speedup`): the rule of `prefetch_plan.plan` beside the
rule before it (two lanes whatever the machine, each with half the cores' threads).

    python benchmarks/prefetch_simulation.py [--cores 2 4 8 16] [--scale 1.0]

--scale multiplies every job's seconds (e.g. a slower machine). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from diffusion_lab.experiments.prefetch import MEASURED, Job, measured_speedup, ordered
from diffusion_lab.experiments.prefetch_plan import critical_seconds, plan, simulate
from diffusion_lab.runcache.context import BuildContext


def quick_jobs() -> tuple[Job, ...]:
    """The jobs of a quick build, which their seconds were measured in, ordered (traced: nothing is
    computed, and the cache folder is never touched)."""
    with tempfile.TemporaryDirectory() as folder:
        return ordered(BuildContext(profile="quick", backend="mnist", device=torch.device("cpu"), seed=0,
                                    cache_dir=Path(folder) / "cache", force=False))


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(round(seconds % 60)):02d} s"


def rows(cores_list: list[int], scale: float) -> list[str]:
    speedup = measured_speedup()
    jobs = quick_jobs()
    lines = ["| cores | before: 2 lanes x cores/2 threads | this rule: lanes, threads per job | this rule |",
             "|---|---|---|---|"]
    for cores in cores_list:
        before = simulate(jobs, cores, speedup, threads={job.name: max(1, cores // 2) for job in jobs}, scale=scale)
        layout = plan(jobs, cores, speedup)
        threads = sorted(set(layout.threads.values()))
        spread = f"{threads[0]}" if len(threads) == 1 else f"{threads[0]}-{threads[-1]}"
        lines.append(f"| {cores} | {_clock(max(slot.end for slot in before))} | {layout.lanes} lanes, "
                     f"{spread} thread{'s' if threads[-1] > 1 else ''} | {_clock(layout.seconds * scale)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    measured = MEASURED["job_seconds"]
    chain = critical_seconds(quick_jobs())
    print(f"Job seconds: {measured['machine']}, {measured['date']} at {measured['commit']}"
          f" (x {args.scale:g}); longest chain {_clock(max(chain.values()) * args.scale)} at one thread.\n")
    print("\n".join(rows(args.cores, args.scale)))


if __name__ == "__main__":
    main()
