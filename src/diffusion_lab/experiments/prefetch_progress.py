"""What a running prefetch says while it works: jobs done of total, what runs and for how long, and
an estimate of the time left that learns this machine's speed from the jobs already finished.

In a terminal it is one live line, redrawn every second, with a line above it as each job starts
and ends; in a log (stderr not a terminal), those lines and the status line once a minute.

The estimate: each job's measured one-thread seconds (`Job.seconds`, from the reference machine)
divided by its threads' `Speedup` is what it should take there; this machine's factor is what the
finished jobs took over what they should have taken (1 until one has finished). The queue is then
simulated from now with every job scaled by that factor (`prefetch_plan.simulate`), the running
jobs with what they should still need.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Sequence, TextIO

from diffusion_lab.experiments.prefetch_plan import PlannedJob, Speedup, simulate


def clock_text(seconds: float) -> str:
    """Seconds as h:mm:ss or m:ss, e.g. 75 -> '1:15', 3725 -> '1:02:05'."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def left_text(seconds: float) -> str:
    """A time left, rounded as a person would say it: '40 s', '3 min', '1 h 05 min'."""
    if seconds < 90:
        return f"{max(5, int(seconds / 5.0 + 0.5) * 5)} s"
    minutes = int(seconds / 60.0 + 0.5)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """The display of one prefetch (module docstring). `jobs`: every job of the queue; `threads`:
    the planned threads of each job to compute; `done`: the jobs whose runs were cached already."""

    def __init__(self, jobs: Sequence[PlannedJob], threads: dict[str, int], cores: int, speedup: Speedup,
                 done: Sequence[str] = (), stream: TextIO | None = None, live: bool | None = None,
                 every: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.jobs, self.threads, self.cores, self.speedup = jobs, dict(threads), cores, speedup
        self.cached = list(done)
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.every, self.clock = every, clock
        self.seconds = {job.name: job.seconds for job in jobs}
        self.started_at: dict[str, float] = {}
        self.took: dict[str, float] = {}
        self.began = clock()
        self.last_status = self.began

    # --- what happened -----------------------------------------------------------------------------

    def started(self, name: str) -> None:
        self.started_at[name] = self.clock()
        threads = self.threads[name]
        self._event(f"prefetch: {name} started ({threads} thread{'s' if threads > 1 else ''})")

    def finished(self, name: str) -> None:
        self.took[name] = self.clock() - self.started_at.pop(name)
        self._event(f"prefetch: {name} ready after {clock_text(self.took[name])}")

    def failed(self, name: str, log: str) -> None:
        self.started_at.pop(name, None)
        self._event(f"prefetch: {name} failed; its output is in {log}")

    def tick(self) -> None:
        """Called about once a second: redraws the live line, or writes the status once a minute."""
        now = self.clock()
        if self.live:
            self._write(f"\r\033[K{self.status()}")
        elif now - self.last_status >= self.every:
            self.last_status = now
            self._write(self.status() + "\n")

    def close(self) -> None:
        done = len(self.took)
        line = (f"prefetch: {done} job{'s' if done != 1 else ''} computed in "
                f"{clock_text(self.clock() - self.began)}")
        if self.cached:
            line += f" ({len(self.cached)} more cached)"
        self._write(("\r\033[K" if self.live else "") + line + "\n")

    # --- what it says -------------------------------------------------------------------------------

    def expected(self, name: str) -> float:
        """What a job should take on the reference machine with its planned threads."""
        return self.seconds[name] / self.speedup(self.threads[name])

    def factor(self) -> float:
        """This machine's seconds over the reference machine's, from the finished jobs (1 before)."""
        expected = sum(self.expected(name) for name in self.took)
        return sum(self.took.values()) / expected if expected > 0 else 1.0

    def seconds_left(self) -> float:
        now, factor = self.clock(), self.factor()
        running = {}
        for name, since in self.started_at.items():
            should = self.expected(name) * factor
            # A job past what it should take is assumed to need a tenth of that again.
            running[name] = (max(should - (now - since), 0.1 * should), self.threads[name])
        slots = simulate(self.jobs, self.cores, self.speedup, threads=self.threads,
                         done=set(self.took) | set(self.cached), running=running, scale=factor)
        return max((slot.end for slot in slots), default=0.0)

    def status(self) -> str:
        total = len(self.threads)
        running = ", ".join(f"{name} {clock_text(self.clock() - since)}"
                            for name, since in sorted(self.started_at.items(), key=lambda item: item[1]))
        line = f"prefetch: {len(self.took)} of {total} jobs done"
        if running:
            line += f", running {running}"
        if len(self.took) < total:
            line += f"; about {left_text(self.seconds_left())} left"
        if self.took:
            line += f" (this machine: {self.factor():.2f}x the reference seconds)"
        else:
            line += " (from the reference machine's seconds until a job ends)"
        return line

    def _event(self, text: str) -> None:
        if self.live:
            self._write(f"\r\033[K{text}\n{self.status()}")
        else:
            self._write(text + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
