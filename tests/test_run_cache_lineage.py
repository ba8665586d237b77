"""runcache.runs: a run's parents (the runs it read while it was computed) kept in its manifest, and
`tracing`, under which cached_run names the runs it is asked for and computes and reads nothing."""

from __future__ import annotations

import json

import pytest
import torch

from diffusion_lab.runcache import entries, runs
from diffusion_lab.runcache.runs import cached_run


@pytest.fixture(autouse=True)
def fresh_log(monkeypatch):
    monkeypatch.setattr(runs, "BUILD_LOG", [])


def _values(scratch):
    scratch.save("values.pt", torch.arange(4.0))
    return {"total": 6.0}


def _manifest(record) -> dict:
    return json.loads(record.path(entries.MANIFEST).read_text())


def test_a_run_keeps_the_runs_it_read_as_its_parents(ctx):
    """Parents: the runs its compute function asked for or opened a file of, and those named by
    key in its parameters; a run read only by the code around it, not named, is none; a nested
    run's reads are its own."""
    upstream = cached_run(ctx, "test/upstream", {"a": 1}, _values)
    named = cached_run(ctx, "test/named", {"a": 2}, _values)
    around = cached_run(ctx, "test/around", {"a": 3}, _values)
    assert around.metrics["total"] == 6.0  # read outside the compute function below: no parent
    inner = {}

    def compute(scratch):
        inner["run"] = cached_run(ctx, "test/inner", {"from": upstream.key}, _values)
        return {"sum": upstream.load("values.pt").sum().item()}

    down = cached_run(ctx, "test/down", {"named": named.key}, compute)
    expected = tuple(sorted([("test/upstream", upstream.key), ("test/named", named.key),
                             ("test/inner", inner["run"].key)]))
    assert down.parents == expected
    assert _manifest(down)["parents"] == [{"name": name, "key": key} for name, key in expected]
    assert inner["run"].parents == (("test/upstream", upstream.key),)  # named by key in its parameters
    assert upstream.parents == ()
    again = cached_run(ctx, "test/down", {"named": named.key}, compute)
    assert again.hit and again.parents == expected


def test_an_entry_made_before_parents_were_kept_is_read_as_it_is(ctx):
    """Parents are provenance, not key: an older entry (no "parents" in its manifest) still serves."""
    first = cached_run(ctx, "test/old", {"a": 1}, _values)
    manifest = _manifest(first)
    del manifest["parents"], manifest[entries.CHECKSUM]
    entries.write_manifest(first.dir, manifest)
    again = cached_run(ctx, "test/old", {"a": 1}, _values)
    assert again.hit and again.key == first.key and again.parents is None


def test_tracing_names_the_runs_asked_for_and_computes_and_reads_nothing(ctx, monkeypatch):
    cached = cached_run(ctx, "test/cached", {"a": 1}, _values)
    logged = list(runs.BUILD_LOG)

    def refuse(*args, **kwargs):
        raise AssertionError("traced runs are neither computed nor read")

    monkeypatch.setattr(runs, "_compute", refuse)
    monkeypatch.setattr(runs, "read_entry", refuse)
    with runs.tracing() as asked, runs.lookup_only():  # tracing wins: nothing is looked up either
        traced = cached_run(ctx, "test/cached", {"a": 1}, _values)
        fresh = cached_run(ctx, "test/fresh", {"from": traced.key}, _values)
    assert asked == [("test/cached", cached.key), ("test/fresh", fresh.key)]
    assert isinstance(traced, runs.TracedRun) and traced.key == cached.key and traced.params == {"a": 1}
    assert runs.BUILD_LOG == logged
    with pytest.raises(runs.TracingError, match="metrics of test/fresh"):
        fresh.metrics["total"]
    with pytest.raises(runs.TracingError, match="metrics of test/fresh"):
        fresh.metrics.get("total")
    with pytest.raises(runs.TracingError, match="file values.pt of test/cached"):
        traced.load("values.pt")
