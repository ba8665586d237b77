"""Cached runs: an experiment's outputs are computed once per (name, params, seed, code, libraries, precision).

`cached_run` keys a run by what its result depends on (`cache_key`), serves a valid entry of the
local cache, else of the shared store (`remote.py`, where the build names one), and otherwise
computes the run in a scratch folder and publishes it (`entries.py`: atomic, idempotent under
concurrent builds, checked against its manifest's checksums). Every run a build asks for is logged
once, with where it came from, for the Build page.

What is key and what is provenance. The key holds what decides the result's numbers up to the
rounding of the hardware: the experiment, its parameters and seed, the source of the code it runs,
the release versions of the libraries that compute (Python's minor version; a build's local tag
such as torch's `+cu130` is not a different release), and the precision the networks run at (bf16
autocast and fp32 give different numbers on any device). Where it ran (CPU or GPU, the chip's
model, its vector instructions), with how many threads and lanes, when, and at which commit are
provenance: the manifest keeps them and every figure shows them, but a `full` run computed on a GPU
serves a CPU build of `full` from the same code, at the same precision. So are a run's parents, the
runs it read while it was computed (`RunRecord.parents`).

Under `tracing()` cached_run computes and reads nothing: it notes which runs an experiment asks for
and hands back stand-ins (`TracedRun`) holding their name, key and parameters, so that which runs a
piece of experiment code touches is known in milliseconds (`experiments.prefetch_graph`).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from diffusion_lab.hashing import file_sha256
from diffusion_lab.runcache.code_fingerprint import loaded_source_fingerprint
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.mnist.precision import auto_means
from diffusion_lab.runcache import remote
from diffusion_lab.runcache.entries import (
    Published,
    clean_dead_scratch,
    current_copy,
    end_scratch,
    entry_dir,
    new_scratch,
    publish,
    read_entry,
    write_manifest,
)
from diffusion_lab.runcache.provenance import canonical_json, git_commit, key_versions, library_versions
from diffusion_lab.seeding import make_generator



@dataclass
class Scratch:
    """What a run's compute function gets: a folder to write into and its sources of randomness."""

    name: str
    dir: Path
    params: dict
    seed: int
    device: torch.device

    def generator(self, purpose: str) -> torch.Generator:
        return make_generator(self.seed, f"{self.name}/{purpose}")

    def save(self, filename: str, obj: Any) -> Path:
        """torch.save for tensors and dicts of tensors; JSON for .json names."""
        path = self.dir / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if filename.endswith(".json"):
            path.write_text(json.dumps(obj, indent=2, sort_keys=True))
        else:
            torch.save(obj, path)
        return path


@dataclass
class RunRecord:
    """A finished run, fresh or from the cache: where its files are and how it was made.

    `dir` is the folder of the entry's copy this run was read from; `entry`, the entry in the
    cache's runs/, names the copy published now."""

    name: str
    key: str
    params: dict
    seed: int
    dir: Path
    hit: bool
    wall_s: float
    compute_s: float
    device: str
    profile: str
    backend: str | None  # the noise model the run evaluates ("mnist", "deepfloyd"), None for none
    function: str  # the experiment function that computed it, "diffusion_lab.experiments.partb.guidance_sweep"
    versions: dict
    commit: str
    created: str
    metrics: dict = field(default_factory=dict)
    precision: str | None = None  # "bf16" / "fp32": see `run_precision`; None in entries made before it was kept
    threads: int | None = None  # torch's threads in the process that computed it; None in older entries
    lanes: int | None = None  # processes computing side by side when it was computed (`EXECUTION`); None in older entries
    entry: Path | None = None  # the entry in runs/ (`path` follows it to a replacing copy)
    origin: str = "computed"  # "computed" here, read from the "local" cache, or from the "remote" store
    # (name, key) of each run it read while it was computed, sorted; None in entries made before they were kept
    parents: tuple[tuple[str, str], ...] | None = None

    def path(self, filename: str) -> Path:
        """The file in the run's copy; in the copy the entry names now where a concurrent FORCE
        build replaced (and deleted) that one."""
        _note_read(self.name, self.key)
        if self.entry is not None and not self.dir.is_dir():
            return (current_copy(self.entry) or self.dir) / filename
        return self.dir / filename

    def load(self, filename: str, map_location="cpu") -> Any:
        """The file's contents: JSON for .json names, else torch.load."""
        for attempt in range(3):
            try:
                return _load(self.path(filename), map_location)
            except FileNotFoundError:
                # A concurrent FORCE may have deleted the copy between `path` and opening the
                # file; the entry now names the new copy.
                if attempt == 2:
                    raise


class TracingError(RuntimeError):
    """Experiment code read a run's results (metrics, files) outside its compute function while the
    runs it asks for were traced (`tracing`): there are none to read."""


class _Untraced(Mapping):
    """A traced run's metrics: reading any raises TracingError, naming the run."""

    def __init__(self, name: str):
        self._name = name

    def _refuse(self, *_):
        raise TracingError(f"the metrics of {self._name} were read outside a compute function while runs were "
                           "traced; read an upstream run's results inside the compute function that uses them")

    __getitem__ = __iter__ = __len__ = _refuse


class TracedRun(RunRecord):
    """What cached_run hands back under `tracing`: the run's name, key, parameters and seed, no
    results (its metrics and files raise TracingError)."""

    def path(self, filename: str) -> Path:
        raise TracingError(f"the file {filename} of {self.name} was read outside a compute function while runs "
                           "were traced; read an upstream run's files inside the compute function that uses them")


def _load(path: Path, map_location) -> Any:
    if path.name.endswith(".json"):
        return json.loads(path.read_text())
    return torch.load(path, map_location=map_location, weights_only=True)


# Every run of this process, once each (by key), in the order first met: the Build page lists them.
BUILD_LOG: list[RunRecord] = []

# How this process computes, for provenance only (never in a key): how many processes of the build
# compute side by side (experiments.prefetch sets it in its workers; 1 elsewhere).
EXECUTION: dict[str, int] = {"lanes": 1}


def _log(record: RunRecord) -> RunRecord:
    """Add a run to BUILD_LOG unless it is there already: a run computed then read again in the
    same build is one run, listed as computed."""
    if all(logged.key != record.key for logged in BUILD_LOG):
        BUILD_LOG.append(record)
    return record


def computed_by(compute: Callable) -> str:
    """`module.function` of the experiment function whose local `compute` this is (or of `compute`
    itself where it is a top-level function): what a reader looks up to see how a run was made."""
    qualname = getattr(compute, "__qualname__", getattr(compute, "__name__", "unknown"))
    return f"{getattr(compute, '__module__', None) or 'unknown'}.{qualname.split('.<locals>')[0]}"


def compute_modules(compute: Callable) -> tuple[str, ...]:
    """Where a compute function's code lives: its own module, and the package's modules of the
    objects it closes over (a backend handle's class, say), whose methods it may call."""
    own = getattr(compute, "__module__", None) or "unknown"
    cells = getattr(compute, "__closure__", None) or ()
    held = {type(cell.cell_contents).__module__ for cell in cells if _is_filled(cell)}
    return tuple(sorted({own} | {module for module in held if module.split(".")[0] == "diffusion_lab"}))


def _is_filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # a cell whose variable is not assigned yet
        return False
    return True


def cache_key(name: str, params: dict, seed: int, precision: str,
              source_modules: tuple[str, ...] | None = None) -> str:
    """What a run's result depends on (the module's docstring says what is key and what is not); the
    code of `source_modules` (see `compute_modules`) and all they import from the package is part of
    it, or the whole package's code when None."""
    identity = {
        "experiment": name,
        "params": json.loads(canonical_json(params)),
        "seed": seed,
        "source": loaded_source_fingerprint(source_modules),
        "versions": key_versions(),
        "precision": precision,
    }
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()


def _record(published: Published, entry: Path, origin: str, wall_s: float, ctx: BuildContext,
            backend: str | None, function: str) -> RunRecord:
    manifest = published.manifest
    return RunRecord(
        name=manifest["name"], key=manifest["key"], params=manifest["params"], seed=manifest["seed"],
        dir=published.folder, entry=entry, hit=origin != "computed", origin=origin, wall_s=wall_s,
        compute_s=manifest["compute_s"],
        device=manifest["device"], profile=ctx.profile, backend=backend, function=function,
        versions=manifest["versions"],
        commit=manifest["commit"], created=manifest["created"], metrics=manifest.get("metrics", {}),
        precision=manifest.get("precision"), threads=manifest.get("threads"), lanes=manifest.get("lanes"),
        parents=_parents_of(manifest),
    )


def _parents_of(manifest: dict) -> tuple[tuple[str, str], ...] | None:
    parents = manifest.get("parents")
    return None if parents is None else tuple((parent["name"], parent["key"]) for parent in parents)


def _traced(ctx: BuildContext, name: str, params: dict, seed: int, key: str, entry: Path, backend: str | None,
            function: str) -> TracedRun:
    return TracedRun(
        name=name, key=key, params=json.loads(canonical_json(params)), seed=seed, dir=entry, entry=entry, hit=False,
        origin="traced", wall_s=0.0, compute_s=0.0, device="", profile=ctx.profile, backend=backend,
        function=function, versions={}, commit="", created="", metrics=_Untraced(name),
    )


# While a run is computed: the (name, key) of the runs its compute function asks cached_run for or
# opens a file of (nested runs have their own set).
_READS: ContextVar[set[tuple[str, str]] | None] = ContextVar("reads", default=None)


def _note_read(name: str, key: str) -> None:
    reads = _READS.get()
    if reads is not None:
        reads.add((name, key))


def _named_in(params: Any, known: dict[str, str]) -> set[tuple[str, str]]:
    """The runs of `known` (key -> name) whose key is a value somewhere in `params`: a run that needs
    another names its key among its parameters."""
    if isinstance(params, dict):
        return set().union(*(_named_in(value, known) for value in params.values()))
    if isinstance(params, (list, tuple)):
        return set().union(*(_named_in(value, known) for value in params))
    return {(known[params], params)} if isinstance(params, str) and params in known else set()


def run_precision(ctx: BuildContext, metrics: dict) -> str:
    """The precision a run's networks ran at: the one its metrics report (a training run's resolved
    recipe precision), else what "auto" resolves to on the build's device (`BuildContext.precision`)."""
    reported = metrics.get("precision") if isinstance(metrics, dict) else None
    return reported if reported in ("bf16", "fp32") else ctx.precision


def _compute(ctx: BuildContext, name: str, params: dict, seed: int, key: str, entry: Path,
             compute: Callable[[Scratch], dict | None]) -> Published:
    """Run `compute` in a scratch folder, write its manifest and publish it; returns the published copy."""
    scratch_dir = new_scratch(ctx.cache_dir, key[:12], name)
    try:
        scratch = Scratch(name=name, dir=scratch_dir, params=params, seed=seed, device=ctx.device)
        compute_started = time.perf_counter()
        reads: set[tuple[str, str]] = set()
        token = _READS.set(reads)
        try:
            with auto_means(ctx.precision):  # "auto" in a recipe is the precision in the key
                metrics = compute(scratch) or {}
        finally:
            _READS.reset(token)
        compute_s = time.perf_counter() - compute_started
        # Read while computing, or named in its parameters by key (read before computing, outside
        # the compute function: the key is how a run says it depends on another).
        parents = sorted(reads | _named_in(params, {record.key: record.name for record in BUILD_LOG}))
        files = {
            str(path.relative_to(scratch_dir)): file_sha256(path)
            for path in sorted(scratch_dir.rglob("*"))
            if path.is_file()
        }
        precision = run_precision(ctx, metrics)
        # The manifest goes in last: its presence is what marks the copy complete.
        manifest = write_manifest(scratch_dir, {
            "name": name, "key": key, "params": json.loads(canonical_json(params)), "seed": seed,
            "metrics": json.loads(canonical_json(metrics)), "files": files, "compute_s": compute_s,
            "device": ctx.describe_device(precision), "versions": library_versions(), "commit": git_commit(),
            "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            # Optional (entries made before them stay valid): the Build page's columns; the runs it read.
            "precision": precision, "threads": ctx.threads, "lanes": EXECUTION["lanes"],
            "profile": ctx.profile, "parents": [{"name": parent, "key": parent_key} for parent, parent_key in parents],
        })
        return publish(scratch_dir, manifest, entry, ctx.force)
    finally:
        end_scratch(scratch_dir)  # deleted unless published


class NotCached(LookupError):
    """A run asked for under `lookup_only` is not in the cache."""


_LOOKUP_ONLY: ContextVar[bool] = ContextVar("lookup_only", default=False)
_TRACE: ContextVar[list[tuple[str, str]] | None] = ContextVar("trace", default=None)

# Keys that other processes of this build computed (the workers of experiments.prefetch): reading
# one is reading this build's own result, so it is listed as computed, and FORCE does not redo it.
COMPUTED_THIS_BUILD: set[str] = set()
# Keys that other processes of this build read from the shared store: read here, they are listed as
# read from the store.
FETCHED_THIS_BUILD: set[str] = set()


@contextmanager
def lookup_only():
    """Inside this block a run that is not cached raises NotCached instead of being computed."""
    token = _LOOKUP_ONLY.set(True)
    try:
        yield
    finally:
        _LOOKUP_ONLY.reset(token)


@contextmanager
def tracing() -> Iterator[list[tuple[str, str]]]:
    """Inside this block cached_run computes nothing, reads no cache or store and logs nothing: it
    appends the (name, key) of each run it is asked for to the list this yields (in the order asked,
    repeats included) and returns a `TracedRun` of it. Experiment code that reads an upstream run's
    metrics or files outside its compute function raises TracingError here."""
    asked: list[tuple[str, str]] = []
    token = _TRACE.set(asked)
    try:
        yield asked
    finally:
        _TRACE.reset(token)


def computed_keys() -> list[str]:
    """The keys of the runs this process computed (not read from the cache) so far."""
    return [record.key for record in BUILD_LOG if not record.hit]


def fetched_keys() -> list[str]:
    """The keys of the runs this process read from the shared store so far."""
    return [record.key for record in BUILD_LOG if record.origin == "remote"]


def _origin_of(found: Published) -> str:
    return "remote" if found.manifest["key"] in FETCHED_THIS_BUILD else "local"


def cached_run(
    ctx: BuildContext,
    name: str,
    params: dict,
    compute: Callable[[Scratch], dict | None],
    *,
    seed: int | None = None,
    backend: str | None = None,
) -> RunRecord:
    """Return the run (name, params, seed) from the cache, computing it first on a miss or FORCE.

    `compute(scratch)` writes files into scratch.dir and returns JSON-able metrics (or None).
    `backend` names the noise model the run evaluates (its provenance shows it), None where the
    run evaluates none (training, measurements of Part B's own models, input processing).
    """
    seed = ctx.seed if seed is None else seed
    function = computed_by(compute)
    key = cache_key(name, params, seed, ctx.precision, compute_modules(compute))
    entry = entry_dir(ctx.cache_dir, name, key)
    traced = _TRACE.get()
    if traced is not None:
        traced.append((name, key))
        return _traced(ctx, name, params, seed, key, entry, backend, function)
    started = time.perf_counter()
    clean_dead_scratch(ctx.cache_dir)

    def record(published: Published, origin: str) -> RunRecord:
        _note_read(name, key)  # in the run whose compute function asked for it, if any
        return _log(_record(published, entry, origin, time.perf_counter() - started, ctx, backend, function))

    if not ctx.force or key in COMPUTED_THIS_BUILD:
        found, why = read_entry(entry, key)
        if found is not None:
            return record(found, "computed" if key in COMPUTED_THIS_BUILD else _origin_of(found))
        if why is not None and not _LOOKUP_ONLY.get():
            print(f"run cache: recomputing {entry.name}: {why}", file=sys.stderr)
    if not ctx.force and ctx.cache_url:
        fetched = remote.store_for(ctx.cache_url).fetch(name, key, entry, ctx.cache_dir)
        if fetched is not None:
            return record(fetched, "remote")
    if _LOOKUP_ONLY.get():
        raise NotCached(name)

    return record(_compute(ctx, name, params, seed, key, entry, compute), "computed")
