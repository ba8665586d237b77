"""experiments.prefetch_plan: lanes and threads from the cores, the queue's simulated course, and
runcache.machine: physical cores from the affinity mask and the topology."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from diffusion_lab.experiments import prefetch
from diffusion_lab.experiments.prefetch_plan import Speedup, critical_seconds, plan, share_cores, simulate
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.machine import physical_cores_of


@dataclass(frozen=True)
class J:
    name: str
    after: tuple[str, ...] = ()
    seconds: float = 0.0


@pytest.fixture(scope="module")
def quick_jobs(tmp_path_factory):
    """The real jobs ordered for a quick build, whose cold build their measured seconds are of
    (traced: nothing is computed)."""
    ctx = BuildContext(profile="quick", backend="mnist", device=torch.device("cpu"), seed=0,
                       cache_dir=tmp_path_factory.mktemp("quick") / "cache", force=False)
    return prefetch.ordered(ctx)


LINEAR = Speedup(parallel=1.0)  # t threads, t times as fast
SERIAL = Speedup(parallel=0.0)  # threads add nothing


def test_amdahl_speedup_and_the_most_threads_that_pay():
    half = Speedup(parallel=0.5)
    assert half(1) == 1.0 and half(2) == pytest.approx(4 / 3) and half(1000) < 2.0
    assert SERIAL.most_threads() == 1
    third = prefetch.measured_speedup({"1": 440, "2": 660})
    assert third.parallel == pytest.approx(2 / 3) and third(2) == pytest.approx(1.5)
    assert third.most_threads() == 4  # 4 -> 5 threads would gain under a tenth: 2.0 -> 2.14
    with pytest.raises(ValueError, match=r"parallel share must lie in \[0, 1\]"):
        Speedup(parallel=1.5)


def test_free_cores_are_shared_longest_chain_first_up_to_the_cap():
    assert share_cores(7, 3, most=8) == [3, 2, 2]
    assert share_cores(16, 2, most=4) == [4, 4]
    assert share_cores(1, 3, most=4) == [1, 1, 1]


def test_critical_seconds_is_the_longest_chain_from_each_job():
    jobs = (J("a", (), 10), J("b", ("a",), 5), J("c", ("a",), 7))
    assert critical_seconds(jobs) == {"a": 17, "b": 5, "c": 7}
    with pytest.raises(ValueError, match="job b comes after 'nothing', which is no job"):
        critical_seconds((J("a"), J("b", ("nothing",))))
    with pytest.raises(ValueError, match="jobs wait for each other in a circle: a -> b -> a"):
        critical_seconds((J("a", ("b",)), J("b", ("a",))))


def test_simulation_runs_ready_jobs_side_by_side_and_waits_for_after():
    jobs = (J("a", (), 10), J("b", (), 4), J("c", ("b",), 3))
    slots = {slot.name: slot for slot in simulate(jobs, 2, SERIAL)}
    assert (slots["a"].start, slots["a"].end) == (0, 10)
    assert (slots["b"].start, slots["c"].start, slots["c"].end) == (0, 4, 7)


def test_fixed_threads_wait_for_free_cores_and_scale_stretches_every_job():
    jobs = (J("a", (), 10), J("b", (), 4), J("wide", ("b",), 8))
    slots = {slot.name: slot for slot in simulate(jobs, 2, LINEAR, threads={"a": 1, "b": 1, "wide": 2}, scale=2)}
    assert slots["b"].end == 8 and slots["a"].end == 20
    assert slots["wide"].start == 20 and slots["wide"].end == 28  # two threads: only once a's core is free


def test_running_and_done_jobs_are_taken_as_they_are():
    jobs = (J("a", (), 10), J("b", ("a",), 6), J("c", (), 5))
    slots = {slot.name: slot for slot in simulate(jobs, 2, SERIAL, threads={"a": 1, "b": 1, "c": 1},
                                                  done={"c"}, running={"a": (3.0, 1)})}
    assert set(slots) == {"a", "b"} and slots["b"].start == 3 and slots["b"].end == 9


def _most_at_once(slots, weight) -> int:
    events = sorted([(s.start, weight(s)) for s in slots] + [(s.end, -weight(s)) for s in slots])
    level = most = 0
    for _, step in events:
        level += step
        most = max(most, level)
    return most


@pytest.mark.parametrize("cores", [2, 3, 4, 8, 16])
def test_the_plan_never_holds_more_threads_than_cores(cores, quick_jobs):
    speedup = prefetch.measured_speedup()
    layout = plan(quick_jobs, cores, speedup)
    assert set(layout.threads) == {job.name for job in quick_jobs}
    assert max(layout.threads.values()) <= speedup.most_threads()
    slots = simulate(quick_jobs, cores, speedup, threads=layout.threads)
    assert _most_at_once(slots, lambda slot: slot.threads) <= cores
    assert layout.lanes == _most_at_once(slots, lambda slot: 1) <= cores


def test_two_cores_run_two_lanes_of_one_thread_and_more_cores_end_sooner(quick_jobs):
    """On the project's 2-core machines every job keeps its one thread (so runs are computed as
    before this rule); more cores never make the plan longer."""
    speedup = prefetch.measured_speedup()
    two = plan(quick_jobs, 2, speedup)
    assert two.lanes == 2 and set(two.threads.values()) == {1}
    ends = [plan(quick_jobs, cores, speedup).seconds for cores in (2, 4, 8, 16)]
    assert ends == sorted(ends, reverse=True) and ends[0] > ends[-1]


def test_the_plan_follows_the_cache_state_only(quick_jobs):
    speedup = prefetch.measured_speedup()
    done = {"time_ddpm", "time_flow", "judge", "denoisers", "pure_noise"}
    first, second = plan(quick_jobs, 4, speedup, done=done), plan(quick_jobs, 4, speedup, done=done)
    assert first == second and not set(first.threads) & done


def test_physical_cores_count_smt_siblings_once(tmp_path):
    for cpu, (package, core) in enumerate([(0, 0), (0, 0), (0, 1), (0, 1), (1, 0)]):
        folder = tmp_path / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "physical_package_id").write_text(f"{package}\n")
        (folder / "core_id").write_text(f"{core}\n")
    assert physical_cores_of({0, 1, 2, 3, 4}, tmp_path) == 3
    assert physical_cores_of({0, 1}, tmp_path) == 1
    assert physical_cores_of({0, 7}, tmp_path) == 2  # cpu7's topology is unreadable: a core of its own
