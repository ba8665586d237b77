"""`site`: build the website as `make site` does, without make (Linux, macOS or Windows).

Once the environment is installed (the README's "Without make"), this is what `make site` runs: it
sets the variables the Makefile exports (DIFFUSION_LAB_PROFILE, _BACKEND, _FORCE, _CACHE, _CACHE_URL,
_PRECISION, _SEED, and the two that quiet mkdocs' notice about mkdocs 2) and runs `mkdocs build --strict` on the
checkout's mkdocs.yml, in a subprocess started from the checkout's root. Each option's default is
its DIFFUSION_LAB_* variable where that is set (as for the other commands), else the Makefile's
default. The options are checked here; a variable's value is checked by the build itself, which
stops on a bad one with one line (gen/settings_hook.py). The package must be installed editable
from a checkout (as `make setup` and the README's steps install it): the checkout is found from
the package's own path.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import diffusion_lab
from diffusion_lab.cli.arguments import UsageError, check_cache_dir, seed
from diffusion_lab.profiles import BACKEND_NAMES, PROFILE_NAMES

# The Makefile's defaults: PROFILE empty (full with CUDA, else quick), BACKEND=mnist, FORCE off,
# CACHE_DIR=.cache in the checkout, SEED=0.
DEFAULT_BACKEND = "mnist"
DEFAULT_CACHE = ".cache"
DEFAULT_SEED = "0"
DEFAULT_SITE = "site"
# What the Makefile exports besides the build's settings: quiet mkdocs' notice about mkdocs 2.
QUIET_MKDOCS = {"DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1"}


def checkout_root() -> Path:
    """The checkout the package is installed (editable) from: src/diffusion_lab/ lies two levels below it."""
    return Path(diffusion_lab.__file__).resolve().parents[2]


def find_config(root: Path) -> Path:
    """The checkout's mkdocs.yml; a package installed from anything but a checkout has none."""
    config = root / "mkdocs.yml"
    if not config.is_file():
        raise UsageError(f"no mkdocs.yml in {root}, where diffusion_lab is installed from: `site` builds a checkout; "
                         "install the package editable from one (pip install --no-deps --no-build-isolation -e .)")
    return config


def add_command(commands) -> None:
    parser = commands.add_parser("site", help="build the website (what `make site` runs), without make",
                                 description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=PROFILE_NAMES,
                        help="recipe size (default: $DIFFUSION_LAB_PROFILE, else full with CUDA, else quick)")
    parser.add_argument("--backend", choices=BACKEND_NAMES,
                        help=f"model behind Part A (default: $DIFFUSION_LAB_BACKEND, else {DEFAULT_BACKEND})")
    parser.add_argument("--seed", type=seed,
                        help="global seed every generator derives from, 0..2**63-1 "
                             f"(default: $DIFFUSION_LAB_SEED, else {DEFAULT_SEED})")
    parser.add_argument("--cache-dir", type=Path,
                        help=f"run cache folder (default: $DIFFUSION_LAB_CACHE, else {DEFAULT_CACHE} in the checkout)")
    parser.add_argument("--cache-url",
                        help="a shared run cache to read the runs the local cache lacks from: s3://, gs://, file:// "
                             "or https:// (default: $DIFFUSION_LAB_CACHE_URL, else none)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"),
                        help="what Part B's networks run at, part of every run's key (default: "
                             "$DIFFUSION_LAB_PRECISION, else auto: the device's rule, or the shared store's)")
    parser.add_argument("--force", action="store_true", help="recompute every run instead of reading the cache")
    parser.add_argument("--site-dir", type=Path,
                        help="where the site is written, replacing what is there "
                             f"(default: {DEFAULT_SITE}/ in the checkout)")
    parser.set_defaults(run=run)


def site_dir(args: argparse.Namespace, root: Path) -> Path:
    """Where the site goes: --site-dir (from the current folder), else site/ in the checkout."""
    folder = args.site_dir.resolve() if args.site_dir else root / DEFAULT_SITE
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--site-dir {folder} is a file; give a folder (it is created, or its contents replaced)")
    return folder


def cache_dir(args: argparse.Namespace, root: Path, environ: dict) -> Path:
    """--cache-dir (checked here), else $DIFFUSION_LAB_CACHE (checked by the build), else .cache in
    the checkout; relative paths are taken from the current folder, as make takes CACHE_DIR from its own."""
    if args.cache_dir:
        folder = args.cache_dir.resolve()
        check_cache_dir(folder)
        return folder
    if environ.get("DIFFUSION_LAB_CACHE"):
        return Path(os.path.abspath(os.path.expanduser(environ["DIFFUSION_LAB_CACHE"])))
    return root / DEFAULT_CACHE


def build_env(args: argparse.Namespace, cache: Path, environ: dict) -> dict:
    """The environment of the build: `environ` with the variables the Makefile exports."""
    env = dict(environ, **QUIET_MKDOCS)
    env["DIFFUSION_LAB_PROFILE"] = args.profile or environ.get("DIFFUSION_LAB_PROFILE", "")
    env["DIFFUSION_LAB_BACKEND"] = args.backend or environ.get("DIFFUSION_LAB_BACKEND") or DEFAULT_BACKEND
    env["DIFFUSION_LAB_FORCE"] = "1" if args.force else environ.get("DIFFUSION_LAB_FORCE", "")
    env["DIFFUSION_LAB_CACHE"] = str(cache)
    env["DIFFUSION_LAB_CACHE_URL"] = args.cache_url or environ.get("DIFFUSION_LAB_CACHE_URL", "")
    env["DIFFUSION_LAB_PRECISION"] = args.precision or environ.get("DIFFUSION_LAB_PRECISION", "")
    given_seed = None if args.seed is None else str(args.seed)
    env["DIFFUSION_LAB_SEED"] = given_seed or environ.get("DIFFUSION_LAB_SEED") or DEFAULT_SEED
    return env


def mkdocs_command(config: Path, site: Path) -> list[str]:
    return [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)]


def run(args: argparse.Namespace) -> int:
    """Build the site; returns mkdocs' exit code (its errors are its own lines)."""
    root = checkout_root()
    config = find_config(root)
    site = site_dir(args, root)
    env = build_env(args, cache_dir(args, root, dict(os.environ)), dict(os.environ))
    built = subprocess.run(mkdocs_command(config, site), cwd=root, env=env)
    if built.returncode == 0:
        profile = env["DIFFUSION_LAB_PROFILE"] or "default"
        print(f"site built in {site} (profile {profile}, backend {env['DIFFUSION_LAB_BACKEND']}): "
              f"open {site / 'index.html'}")
    return built.returncode
