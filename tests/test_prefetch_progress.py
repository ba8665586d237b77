"""experiments.prefetch_progress: jobs done of total and a time-left estimate that learns this
machine's speed from the finished jobs, as one live line in a terminal or a line a minute in a log."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

from diffusion_lab.experiments.prefetch_plan import Speedup
from diffusion_lab.experiments.prefetch_progress import Progress, clock_text, left_text

SERIAL = Speedup(parallel=0.0)


@dataclass(frozen=True)
class J:
    name: str
    after: tuple[str, ...] = ()
    seconds: float = 0.0


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


JOBS = (J("train", (), 100), J("score", ("train",), 50), J("other", (), 20), J("cached", (), 30))


def _progress(live: bool):
    clock, stream = Clock(), io.StringIO()
    progress = Progress(JOBS, {"train": 1, "score": 1, "other": 1}, 2, SERIAL, done=["cached"],
                        stream=stream, live=live, clock=clock)
    return progress, clock, stream


def test_times_read_as_a_person_would():
    assert (clock_text(75), clock_text(3725), clock_text(-3)) == ("1:15", "1:02:05", "0:00")
    assert (left_text(42), left_text(200), left_text(3900)) == ("40 s", "3 min", "1 h 05 min")


def test_before_any_job_ends_the_estimate_is_the_reference_machines():
    progress, clock, _ = _progress(live=False)
    progress.started("train")
    progress.started("other")
    assert progress.seconds_left() == pytest.approx(150)  # train 100 then score 50; other beside them
    assert "0 of 3 jobs done, running train 0:00, other 0:00; about 3 min left (from the reference" in progress.status()


def test_the_estimate_learns_this_machines_speed_from_finished_jobs():
    progress, clock, _ = _progress(live=False)
    progress.started("train")
    progress.started("other")
    clock.now = 40.0
    progress.finished("other")  # 40 s for a job of 20 reference seconds: this machine takes 2x
    assert progress.factor() == pytest.approx(2.0)
    assert progress.seconds_left() == pytest.approx(160 + 100)  # train's 200 s less 40, then score's 100
    assert "1 of 3 jobs done" in progress.status() and "2.00x the reference seconds" in progress.status()


def test_a_job_past_its_time_is_not_given_negative_time():
    clock = Clock()
    progress = Progress(JOBS, {"other": 1}, 2, SERIAL, done=["cached", "train", "score"], stream=io.StringIO(),
                        live=False, clock=clock)
    progress.started("other")
    clock.now = 500.0  # 25 times its 20 reference seconds
    assert progress.seconds_left() == pytest.approx(0.1 * 20)  # assumed to need a tenth of its time again


def test_a_log_gets_each_event_and_a_status_line_a_minute():
    progress, clock, stream = _progress(live=False)
    progress.started("train")
    clock.now = 30.0
    progress.tick()
    assert stream.getvalue() == "prefetch: train started (1 thread)\n"
    clock.now = 61.0
    progress.tick()
    progress.tick()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("prefetch: 0 of 3 jobs done, running train 1:01")
    assert "\r" not in stream.getvalue()


def test_once_every_job_is_done_no_time_left_is_guessed():
    clock, stream = Clock(), io.StringIO()
    progress = Progress(JOBS, {"other": 1}, 2, SERIAL, done=["cached", "train", "score"], stream=stream,
                        live=False, clock=clock)
    progress.started("other")
    clock.now = 20.0
    progress.finished("other")
    assert progress.status() == "prefetch: 1 of 1 jobs done (this machine: 1.00x the reference seconds)"


def test_a_terminal_gets_one_live_line_with_the_events_above_it():
    progress, clock, stream = _progress(live=True)
    progress.started("train")
    clock.now = 100.0
    progress.finished("train")
    progress.tick()
    progress.close()
    text = stream.getvalue()
    assert "1 of 3 jobs done; about 50 s left" in text  # score (50 s) and other (20 s) side by side, at 1x
    assert "\r\033[Kprefetch: train ready after 1:40\n" in text
    assert text.count("\r\033[K") == 4 and text.endswith("\r\033[Kprefetch: 1 job computed in 1:40 (1 more cached)\n")
