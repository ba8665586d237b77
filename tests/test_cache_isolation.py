"""A run's cache key follows the code it runs: on a copy of the real package, a tiny build of
Part B's training runs, then edits to Part A's code, the samplers, the measurements and a
showcase's sample count (every training run stays cached), then edits to the UNet, the DDPM loss
and the training loop (the training runs recompute)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffusion_lab.runcache.code_fingerprint import dependency_closure, read_sources

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "diffusion_lab"

TRAIN_ALL = """
import json, sys, torch
torch.set_num_threads(1)
from diffusion_lab.experiments import partb_training as t
from diffusion_lab.experiments.judge_training import judge_training
from diffusion_lab.runcache.context import BuildContext
ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0,
                   cache_dir=__import__("pathlib").Path(sys.argv[1]), force=False)
runs = [t.denoiser_training(ctx, False), t.ddpm_training(ctx, False, False), t.ddpm_training(ctx, True, False),
        judge_training(ctx, False)]
print(json.dumps({run.name: run.hit for run in runs}))
"""
TRAINING_RUNS = ("partb/denoiser-training", "partb/time-ddpm-training", "partb/class-ddpm-training",
                 "partb/judge-training")

# The modules of the training runs' compute functions (`runs.compute_modules`).
TRAINING_MODULES = ("diffusion_lab.experiments.partb_training", "diffusion_lab.experiments.judge_training")
# Code outside the fingerprint by design (rendering, the CLI): editing it must retrain nothing either.
NOT_COMPUTATION = ("report/page.py", "cli/part_a.py")


def not_training() -> list[str]:
    """Every module no training run executes, as `code_fingerprint` reads the package: each must
    leave every trained model cached when edited. Paths relative to the package."""
    sources = read_sources(PACKAGE)
    reached = dependency_closure(TRAINING_MODULES, sources)
    paths = []
    for name in sorted(set(sources.code) - reached):
        relative = Path(*name.split(".")[1:])
        paths.append(str(relative / "__init__.py") if (PACKAGE / relative).is_dir() else f"{relative}.py")
    return paths + list(NOT_COMPUTATION)


def test_what_training_does_not_run_is_what_the_course_says():
    """The derived list holds Part A's code, the samplers, the measurements and the backends, and
    none of the training code (the intent the derivation must keep)."""
    derived = set(not_training())
    assert {"sampling.py", "editing.py", "illusions.py", "schedule.py", "blur.py", "stock_sampling.py",
            "backends/mnist.py", "experiments/parta.py", "experiments/partb.py", "experiments/partb_sampling.py",
            "experiments/partb_models.py", "metrics.py"} <= derived
    assert not derived & {"mnist/unet.py", "mnist/ddpm.py", "mnist/training.py", "mnist/judge.py",
                          "experiments/partb_training.py"}
    assert all((PACKAGE / path).is_file() for path in derived)


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("isolation")
    shutil.copytree(PACKAGE, root / "src" / "diffusion_lab", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def train_all(root: Path) -> dict[str, bool]:
    """Cache hit (True) or miss of each Part B training run, built from the copy at `root`."""
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    done = subprocess.run([sys.executable, "-c", TRAIN_ALL, str(root / "cache")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def edit(root: Path, relative: str) -> None:
    """A change to a module's code, as a contributor's edit would be (a comment would not do: the
    key ignores comments and docstrings)."""
    path = root / "src" / "diffusion_lab" / relative
    path.write_text(path.read_text() + "\n_EDITED_BY_TEST_CACHE_ISOLATION = True\n")


def test_training_runs_are_keyed_by_the_code_they_execute(package_copy):
    copy = package_copy
    assert train_all(copy) == {name: False for name in TRAINING_RUNS}

    for relative in not_training():
        edit(copy, relative)
    profiles = copy / "src" / "diffusion_lab" / "profiles.py"
    text = profiles.read_text()
    assert "time_samples=8," in text  # the tiny showcase's sample count
    profiles.write_text(text.replace("time_samples=8,", "time_samples=9,", 1))
    assert train_all(copy) == {name: True for name in TRAINING_RUNS}

    edit(copy, "mnist/judge.py")
    result = train_all(copy)
    assert not result["partb/judge-training"]
    assert all(hit for name, hit in result.items() if name != "partb/judge-training")

    edit(copy, "mnist/unet.py")
    assert train_all(copy) == {name: False for name in TRAINING_RUNS}

    edit(copy, "mnist/ddpm.py")
    result = train_all(copy)
    assert not result["partb/time-ddpm-training"] and not result["partb/class-ddpm-training"]

    edit(copy, "mnist/training.py")
    assert train_all(copy) == {name: False for name in TRAINING_RUNS}


def test_a_recipe_change_in_the_profile_table_retrains_through_the_parameters(package_copy):
    """The profile table is not fingerprinted: what a run uses of it must reach its key as parameters."""
    copy = package_copy
    train_all(copy)
    profiles = copy / "src" / "diffusion_lab" / "profiles.py"
    text = profiles.read_text()
    changed = re.sub(r"(_TINY = .*?denoiser=DenoiserRecipe\(\s*num_hiddens=)8", r"\g<1>12", text, count=1, flags=re.S)
    assert changed != text
    profiles.write_text(changed)
    result = train_all(copy)
    assert not result["partb/denoiser-training"]
    assert result["partb/time-ddpm-training"] and result["partb/class-ddpm-training"]
