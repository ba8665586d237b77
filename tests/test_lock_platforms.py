"""requirements.lock installs on every platform torch 2.14.1 ships wheels for, on Python 3.11, 3.12
and 3.13: there, every pin that applies has a binary wheel, and resolving pyproject.toml against
the package index with the lock as constraints and wheels only gives exactly those pins.

Each case asks the index (uv caches what it read: a second run takes about a second a case). uv is
the Makefile's, in build/lock-tools: `make lock-tools` installs it when missing. Where the
index cannot be reached, the cases are skipped with a line saying so."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from diffusion_lab.runcache.provenance import read_lock

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
UV = REPO / "build" / "lock-tools" / "bin" / "uv"
PYTHONS = ("3.11", "3.12", "3.13")
MACOS_VERSION = "14.0"
# name: (uv's --python-platform, that platform's os_name, sys_platform, platform_system, platform_machine)
PLATFORMS = {
    "linux-x86_64": ("x86_64-unknown-linux-gnu", ("posix", "linux", "Linux", "x86_64")),
    "linux-aarch64": ("aarch64-unknown-linux-gnu", ("posix", "linux", "Linux", "aarch64")),
    "macos14-arm64": ("aarch64-apple-darwin", ("posix", "darwin", "Darwin", "arm64")),
    "windows-x86_64": ("x86_64-pc-windows-msvc", ("nt", "win32", "Windows", "AMD64")),
}
# What uv says when it cannot reach the index (as opposed to a resolution that fails).
_NETWORK_ERROR = re.compile(r"dns error|error sending request|Could not connect|failed to lookup address|"
                            r"Connection refused|network is unreachable|operation timed out", re.IGNORECASE)


# uv's default index, the one `make lock` resolves against; each request gives up after this long.
_UV_ENV = {"UV_HTTP_TIMEOUT": "20", "MACOSX_DEPLOYMENT_TARGET": MACOS_VERSION}
_UV_INDEX_VARIABLES = ("UV_INDEX", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS")


@pytest.fixture(scope="session")
def uv() -> Path:
    """The Makefile's uv, at its version (`make lock-tools` installs it when missing or older);
    skips when the package index cannot be reached (uv cannot be installed, or cannot read it)."""
    env = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    made = subprocess.run(["make", "--no-print-directory", "lock-tools"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    if made.returncode != 0 and not UV.exists():
        pytest.skip(f"uv could not be installed (no package index?): {(made.stderr or made.stdout).strip()[-300:]}")
    assert made.returncode == 0 and UV.exists(), f"`make lock-tools` failed:\n{made.stdout}{made.stderr}"
    return UV


def marker_environment(platform: str, python: str) -> dict[str, str]:
    """The marker variables of `platform` on CPython `python` ("3.12"), as uv takes them: a version
    without its patch number is its .0 release."""
    platform_variables = dict(zip(("os_name", "sys_platform", "platform_system", "platform_machine"),
                                  PLATFORMS[platform][1]))
    return {**platform_variables, "python_version": python, "python_full_version": f"{python}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "platform_release": "", "platform_version": ""}


def _compile(uv: Path, platform: str, python: str, *args: str) -> subprocess.CompletedProcess:
    """`uv pip compile` for `platform` and `python`, wheels only, from uv's default index alone (as
    `make lock`: no uv configuration, no UV_* index variables)."""
    command = [str(uv), "pip", "compile", "--no-config", "--no-python-downloads", "--quiet", "--no-header",
               "--no-annotate", "--python-platform", PLATFORMS[platform][0], "--python-version", python,
               "--only-binary", ":all:", *args]
    env = {key: value for key, value in os.environ.items() if key not in _UV_INDEX_VARIABLES} | _UV_ENV
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and _NETWORK_ERROR.search(done.stderr):
        pytest.skip(f"the package index could not be reached: {done.stderr.strip().splitlines()[-1]}")
    return done


def _pins(text: str, tmp_path: Path) -> dict[str, str]:
    """The pins of a requirements text uv wrote for one platform, read the way the lock is."""
    path = tmp_path / "resolved.txt"
    path.write_text(text)
    return read_lock(path)


def _wheel_problems(uv: Path, locked: dict[str, str], platform: str, python: str, tmp_path: Path) -> list[str]:
    """["a pin ... has no binary wheel ..."] when one of the pins `locked` has no wheel for `platform`."""
    pins = tmp_path / "pins.txt"
    pins.write_text("".join(f"{name}=={version}\n" for name, version in sorted(locked.items())))
    wheels = _compile(uv, platform, python, "--no-deps", str(pins))
    if wheels.returncode == 0:
        return []
    return [f"a pin has no binary wheel for {platform}, Python {python}: {wheels.stderr.strip()}"]


def _resolution_problems(uv: Path, lock: Path, locked: dict[str, str], platform: str, python: str,
                         tmp_path: Path) -> list[str]:
    """How pyproject.toml's resolution within `lock` (wheels only) differs from the pins `locked`."""
    where = f"{platform}, Python {python}"
    resolved = _compile(uv, platform, python, "--constraint", str(lock), "--extra", "test",
                        "--group", "pyproject.toml:build", "pyproject.toml")
    if resolved.returncode != 0:
        return [f"pyproject.toml does not resolve within {lock.name} for {where}: {resolved.stderr.strip()}"]
    found = _pins(resolved.stdout, tmp_path)
    problems = []
    for name in sorted(locked.keys() | found.keys()):
        if name not in found:
            problems.append(f"{name}=={locked[name]} is pinned for {where}, which does not need it: its marker is missing")
        elif name not in locked:
            problems.append(f"{name} is needed on {where} but not pinned there (resolved {found[name]}): run `make lock`")
        elif locked[name] != found[name]:
            problems.append(f"{name}: pinned {locked[name]}, resolved {found[name]} on {where}")
    return problems


def lock_problems(uv: Path, lock: Path, platform: str, python: str, tmp_path: Path) -> list[str]:
    """What keeps `lock` from installing on `platform` with `python` (an empty list: nothing): pins
    the resolution of pyproject.toml within the lock, wheels only, does not match (missing, unneeded
    or at another version), or that fails; then, to say why, the applicable pins without a wheel.
    (A resolution equal to the pins has a wheel for each of them.)"""
    locked = read_lock(lock, marker_environment(platform, python))
    problems = _resolution_problems(uv, lock, locked, platform, python, tmp_path)
    return problems and _wheel_problems(uv, locked, platform, python, tmp_path) + problems


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_lock_installs_there(uv, platform, python, tmp_path):
    assert lock_problems(uv, LOCK, platform, python, tmp_path) == []


def test_the_check_finds_a_pin_without_its_marker(uv, tmp_path):
    """The check itself: NCCL ships Linux wheels only; pinned without its marker, Windows fails."""
    planted = tmp_path / "requirements.lock"
    text, count = re.subn(r"^(nvidia-nccl-cu13==\S+) ;[^\n]*$", r"\1", LOCK.read_text(), flags=re.MULTILINE)
    assert count == 1, "requirements.lock has no marked nvidia-nccl-cu13 pin to plant"
    planted.write_text(text)
    problems = lock_problems(uv, planted, "windows-x86_64", "3.12", tmp_path)
    assert any("has no binary wheel" in problem and "nvidia-nccl-cu13" in problem for problem in problems), problems
    assert any(problem.startswith("nvidia-nccl-cu13==") and "marker is missing" in problem for problem in problems), problems
    assert lock_problems(uv, planted, "linux-x86_64", "3.12", tmp_path) == []
