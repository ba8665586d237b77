"""Cached runs: an experiment's outputs are computed once per (name, params, seed, code, libraries, device).

A run writes its files into a scratch folder; only when it has finished is a manifest (with the
sha256 of every file) written and the folder renamed into place, so a crash never leaves a
half-written entry that looks complete. An entry whose files do not match its manifest is
treated as absent and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from diffusion_lab.hashing import file_sha256
from diffusion_lab.runcache.code_fingerprint import loaded_source_fingerprint
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.provenance import canonical_json, git_commit, library_versions
from diffusion_lab.seeding import make_generator

MANIFEST = "manifest.json"


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
    """A finished run, fresh or from the cache: where its files are and how it was made."""

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

    def path(self, filename: str) -> Path:
        return self.dir / filename

    def load(self, filename: str, map_location="cpu") -> Any:
        path = self.path(filename)
        if filename.endswith(".json"):
            return json.loads(path.read_text())
        return torch.load(path, map_location=map_location, weights_only=True)


# Every run of this process, in order: the Build page lists them.
BUILD_LOG: list[RunRecord] = []


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


def cache_key(name: str, params: dict, seed: int, device_kind: str,
              source_modules: tuple[str, ...] | None = None) -> str:
    """What a run's result depends on; the code of `source_modules` (see `compute_modules`) and all
    they import from the package is part of it, or the whole package's code when None."""
    identity = {
        "experiment": name,
        "params": json.loads(canonical_json(params)),
        "seed": seed,
        "source": loaded_source_fingerprint(source_modules),
        "versions": library_versions(),
        "device": device_kind,
    }
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()


def _entry_dir(cache_dir: Path, name: str, key: str) -> Path:
    return cache_dir / "runs" / f"{name.replace('/', '__')}-{key[:20]}"


def _read_valid_manifest(entry: Path, key: str) -> dict | None:
    """The manifest if the entry is complete and every file matches its checksum, else None."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        if manifest.get("key") != key:
            return None
        for filename, expected in manifest["files"].items():
            if file_sha256(entry / filename) != expected:
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record(manifest: dict, entry: Path, hit: bool, wall_s: float, ctx: BuildContext,
            backend: str | None, function: str) -> RunRecord:
    return RunRecord(
        name=manifest["name"], key=manifest["key"], params=manifest["params"], seed=manifest["seed"],
        dir=entry, hit=hit, wall_s=wall_s, compute_s=manifest["compute_s"], device=manifest["device"],
        profile=ctx.profile, backend=backend, function=function, versions=manifest["versions"],
        commit=manifest["commit"], created=manifest["created"], metrics=manifest.get("metrics", {}),
    )


def _publish(scratch_dir: Path, entry: Path) -> None:
    """Move a finished scratch folder into place, replacing a corrupt entry if there is one."""
    if entry.exists():
        graveyard = entry.with_name(f".{entry.name}.stale-{uuid.uuid4().hex[:8]}")
        os.replace(entry, graveyard)
        shutil.rmtree(graveyard, ignore_errors=True)
    os.replace(scratch_dir, entry)


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
    key = cache_key(name, params, seed, ctx.device_kind, compute_modules(compute))
    entry = _entry_dir(ctx.cache_dir, name, key)
    started = time.perf_counter()

    if not ctx.force:
        manifest = _read_valid_manifest(entry, key)
        if manifest is not None:
            record = _record(manifest, entry, True, time.perf_counter() - started, ctx, backend, function)
            BUILD_LOG.append(record)
            return record

    tmp_root = ctx.cache_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    scratch_dir = Path(tempfile.mkdtemp(prefix=f"{key[:12]}-", dir=tmp_root))
    try:
        scratch = Scratch(name=name, dir=scratch_dir, params=params, seed=seed, device=ctx.device)
        compute_started = time.perf_counter()
        metrics = compute(scratch) or {}
        compute_s = time.perf_counter() - compute_started
        files = {
            str(path.relative_to(scratch_dir)): file_sha256(path)
            for path in sorted(scratch_dir.rglob("*"))
            if path.is_file()
        }
        manifest = {
            "name": name, "key": key, "params": json.loads(canonical_json(params)), "seed": seed,
            "metrics": json.loads(canonical_json(metrics)), "files": files, "compute_s": compute_s,
            "device": ctx.device_description, "versions": library_versions(), "commit": git_commit(),
            "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        # The manifest goes in last: its presence is what marks the entry complete.
        (scratch_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        entry.parent.mkdir(parents=True, exist_ok=True)
        _publish(scratch_dir, entry)
    except BaseException:
        shutil.rmtree(scratch_dir, ignore_errors=True)
        raise
    record = _record(manifest, entry, False, time.perf_counter() - started, ctx, backend, function)
    BUILD_LOG.append(record)
    return record
