"""The CLI's arguments: one-line usage errors, checked numbers, output and cache checks.

Everything here runs before any model is trained or sampled: a bad input costs nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from diffusion_lab.profiles import COURSE_GUIDANCE, PROFILE_NAMES

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with what the user asked for, reported as one line with exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage dump
        raise UsageError(f"{self.prog}: {message}")


def check_output(path: Path, suffixes: tuple[str, ...]) -> None:
    """Refuse an output path before any work is done, not after: a wrong suffix, a folder in the
    way, or a folder that is missing or cannot be written to."""
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"--out must end in {' or '.join(suffixes)}, got {path}")
    if path.is_dir():
        raise UsageError(f"--out {path} is a folder; give a file name, e.g. {path / ('out' + suffixes[0])}")
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"output folder {folder} {what}; create it or choose another --out")
    problem = _cannot_write_in(folder)
    if problem:
        raise UsageError(f"cannot write --out {path}: {problem} in {folder}; choose a writable folder")


def _cannot_write_in(folder: Path) -> str | None:
    """Why a file cannot be created in `folder`, or None. A real probe, not os.access: access()
    says yes to root on read-only mounts and pseudo-filesystems."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
    except OSError as error:
        return error.strerror or type(error).__name__
    os.close(handle)
    os.unlink(probe)
    return None


def check_cache_dir(cache_dir: Path) -> None:
    """Refuse a run cache that is a file, or lies under one, before any work. A read-only cache is
    fine while it holds every run a command needs; `storing_runs` reports one that lacks a run."""
    if cache_dir.exists() and not cache_dir.is_dir():
        raise UsageError(f"the run cache {cache_dir} (--cache-dir or $DIFFUSION_LAB_CACHE) is a file, not a folder; "
                         "pass --cache-dir a folder (it is created if missing)")
    ancestor = next(parent for parent in cache_dir.parents if parent.exists())
    if not cache_dir.exists() and not ancestor.is_dir():
        raise UsageError(f"the run cache {cache_dir} cannot be created: {ancestor} is a file; pass --cache-dir a folder")


@contextmanager
def storing_runs(cache_dir: Path, what: str) -> Iterator[None]:
    """Turn a failure to write a missing run into the cache (read-only, full) into one line that
    says where and why; other errors pass through untouched."""
    try:
        yield
    except OSError as error:
        where = os.path.abspath(error.filename) if isinstance(error.filename, (str, os.PathLike)) else None
        if where is None or not Path(where).is_relative_to(cache_dir):
            raise
        raise UsageError(f"the run cache {cache_dir} lacks {what} and cannot store it: {error.strerror} at {where}; "
                         "make the cache writable or pass --cache-dir a writable folder") from None


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) for a temporary file next to `path`, then rename it onto `path`."""
    path = Path(path)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_context(args, seed_option: str = "seed"):
    """The build context of a command's options (seed, profile, cache, backend), checked before any work.

    seed_option: the option that holds the build's global seed, the one cached runs (trained models)
    are keyed by; when it is None, the seed is $DIFFUSION_LAB_SEED (else 0), as for `make site`."""
    from diffusion_lab.runcache.context import BuildContext

    seed = getattr(args, seed_option)
    overrides = {} if seed is None else {"seed": seed}
    if args.profile:
        overrides["profile"] = args.profile
    if args.cache_dir:
        overrides["cache_dir"] = Path(args.cache_dir).resolve()
    if getattr(args, "backend", None):
        overrides["backend"] = args.backend
    try:
        ctx = BuildContext.from_env(**overrides)
    except ValueError as error:  # a DIFFUSION_LAB_* variable the options do not override
        raise UsageError(str(error).splitlines()[0]) from None
    check_cache_dir(ctx.cache_dir)
    return ctx


GLOBAL_SEED_HELP = "global seed every generator derives from, 0..2**63-1 (default 0)"


def add_common(parser: argparse.ArgumentParser, seed_help: str = GLOBAL_SEED_HELP) -> None:
    parser.add_argument("--profile", choices=PROFILE_NAMES, help="recipe size (default: full on CUDA, else quick)")
    parser.add_argument("--seed", type=seed, default=0, help=seed_help)
    parser.add_argument("--cache-dir", help="run cache folder (default: $DIFFUSION_LAB_CACHE or .cache); "
                                            "read-only is fine when it already holds the trained model")
    parser.add_argument("--out", required=True, type=Path, help="output file, in an existing writable folder")


# --- numbers: each argparse type refuses what is not finite or not in its range ----------------

MAX_SEED = 2**63 - 1  # derived seeds are 63-bit (seeding.derived_seed)
# Far above any useful scale (the site sweeps 0..10); beyond it samples saturate or overflow.
MAX_GUIDANCE = 100.0
# sample-digits holds every digit in memory (28x28 float32, 10 classes) and copies them once to
# save them: the digits of one call may take at most this much.
MAX_DIGIT_BYTES = 2**30
_DIGIT_BYTES = 28 * 28 * 4
_DIGITS_PER_CLASS_BYTES = 10 * _DIGIT_BYTES
MAX_PER_CLASS = MAX_DIGIT_BYTES // _DIGITS_PER_CLASS_BYTES
MAX_NUM = MAX_DIGIT_BYTES // _DIGIT_BYTES


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def seed(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must lie in 0..2**63-1 ({MAX_SEED}), got {value}")
    return value


def guidance_scale(text: str) -> float:
    value = _finite_float(text)
    if not 0.0 <= value <= MAX_GUIDANCE:
        raise argparse.ArgumentTypeError(f"must lie in 0..{MAX_GUIDANCE:g} (0: unconditional, 1: conditional, "
                                         f"{COURSE_GUIDANCE:g}: the course's), got {value:g}")
    return value


# Past about 0.5 a Langevin step's noise swamps its drift and the samples fall apart (r = 0.8 on the
# quick time DDPM collapsed to a few digits); Song et al.'s default is 0.16.
MAX_CORRECTOR_SNR = 1.0


def corrector_snr(text: str) -> float:
    value = _finite_float(text)
    if not 0.0 < value <= MAX_CORRECTOR_SNR:
        raise argparse.ArgumentTypeError(f"must lie in (0, {MAX_CORRECTOR_SNR:g}] (Song et al.'s default: 0.16), "
                                         f"got {value:g}")
    return value


def _digit_count(text: str, limit: int, bytes_each: int, what: str) -> int:
    """A positive count of digits to write, refused above the memory `limit` one call may hold."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    if value > limit:
        gib = value * bytes_each / 2**30
        raise argparse.ArgumentTypeError(
            f"must be at most {limit}: {value}{what} of 28x28 float32 take {gib:,.1f} GiB, over the "
            f"{MAX_DIGIT_BYTES // 2**30} GiB limit for one call; run several calls with different --seed instead")
    return value


def per_class(text: str) -> int:
    return _digit_count(text, MAX_PER_CLASS, _DIGITS_PER_CLASS_BYTES, " x 10 digits")


def num_digits(text: str) -> int:
    return _digit_count(text, MAX_NUM, _DIGIT_BYTES, " digits")


def num_steps(text: str) -> int:
    """At least 1; the upper bound, the model's T, is checked once the profile is known."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
