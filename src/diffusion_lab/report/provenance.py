"""Where a result came from: library versions, package source fingerprint, git commit."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import diffusion_lab

PACKAGE_ROOT = Path(diffusion_lab.__file__).resolve().parent
# Rendering code and the CLI's argument parsing never change what a run computes, so editing them
# must not invalidate hours of cached training.
_NOT_COMPUTATION = ("report", "cli.py", "__main__.py")
_LIBRARIES = ("torch", "torchvision", "diffusers", "transformers", "numpy")


def _library_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "diffusion_lab": diffusion_lab.__version__}
    versions.update({name: _library_version(name) for name in _LIBRARIES})
    return versions


def computation_sources(root: Path = PACKAGE_ROOT) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] in _NOT_COMPUTATION or "__pycache__" in relative.parts:
            continue
        files.append(path)
    return files


@lru_cache(maxsize=1)
def loaded_source_fingerprint() -> str:
    """The fingerprint of the package as this process loaded it, taken once: an edit made while a
    build runs must not change the keys of its later runs (the code they run is the loaded code)."""
    return source_fingerprint(PACKAGE_ROOT)


def source_fingerprint(root: Path = PACKAGE_ROOT) -> str:
    """sha256 over the package's computation code: any edit there makes every run a miss."""
    digest = hashlib.sha256()
    for path in computation_sources(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def canonical_json(value) -> str:
    """One spelling per value, so equal parameters always hash alike."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_jsonable)


def _jsonable(value):
    if isinstance(value, (tuple, set, frozenset)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"parameter of type {type(value).__name__} is not JSON-serialisable: {value!r}")
