"""Where a result came from: library versions and git commit; parameters in one canonical spelling."""

from __future__ import annotations

import json
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import diffusion_lab

_PACKAGE_DIR = Path(diffusion_lab.__file__).resolve().parent
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


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the package's checkout ("+dirty" when tracked files differ), or "unknown"."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=_PACKAGE_DIR, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=_PACKAGE_DIR, capture_output=True, text=True, timeout=10,
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
