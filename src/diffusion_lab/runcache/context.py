"""What a build is asked to do, read once from the environment the Makefile sets.

`BuildContext.from_env` checks every setting it reads before any work: a bad one is a
`BuildSettingError` whose message is one line naming the variable, its value and what is allowed
(the mkdocs hook `gen/settings_hook.py` turns it into a build error before any page script runs).

The device (DIFFUSION_LAB_DEVICE) is cpu, cuda, cuda:N or mps; empty means the first of CUDA,
Apple's MPS and the CPU that this machine has (`choose_device`, told what the machine has by an
`Accelerators`, so tests can say "no CUDA, MPS present" on any machine). Part B's networks run at
the build's precision (DIFFUSION_LAB_PRECISION: auto, bf16 or fp32), which is part of every run's
cache key: auto is what `mnist.precision` resolves for the device (`PRECISION_RULES` says it in
words), unless the shared store (DIFFUSION_LAB_CACHE_URL, `runcache.remote`) holds the profile's runs
at another precision only; the build then adopts the store's.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from diffusion_lab.mnist.precision import PRECISIONS, device_precision
from diffusion_lab.profiles import BACKEND_NAMES, PROFILE_NAMES, Profile, default_profile, get_profile
from diffusion_lab.runcache import machine, remote

MAX_SEED = 2**63 - 1

# The Makefile variable behind each setting, for the message.
_MAKE_VARIABLES = {
    "DIFFUSION_LAB_PROFILE": "PROFILE",
    "DIFFUSION_LAB_BACKEND": "BACKEND",
    "DIFFUSION_LAB_SEED": "SEED",
    "DIFFUSION_LAB_CACHE": "CACHE_DIR",
    "DIFFUSION_LAB_CACHE_URL": "CACHE_URL",
    "DIFFUSION_LAB_PRECISION": "PRECISION",
}


class BuildSettingError(ValueError):
    """A build setting with a value that is not allowed; its message is one line."""

    def __init__(self, variable: str, value: str, allowed: str):
        self.variable, self.value, self.allowed = variable, value, allowed
        make = _MAKE_VARIABLES.get(variable)
        via = f" (make {make}=...)" if make else ""
        super().__init__(f"bad build setting {variable}={value!r}{via}: {allowed}")


def _one_of(names) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def _check_profile(value: str) -> str:
    if value not in PROFILE_NAMES:
        raise BuildSettingError("DIFFUSION_LAB_PROFILE", value,
                                f"the profile must be {_one_of(PROFILE_NAMES)} "
                                f"(or empty for the default, {default_profile()} here)")
    return value


def _check_backend(value: str) -> str:
    if value not in BACKEND_NAMES:
        raise BuildSettingError("DIFFUSION_LAB_BACKEND", value,
                                f"the backend must be {_one_of(BACKEND_NAMES)} (or empty for mnist)")
    return value


def _check_seed(value: str) -> int:
    allowed = f"the seed must be an integer from 0 to 2**63-1 ({MAX_SEED})"
    if not re.fullmatch(r"\s*\+?\d+\s*", value):
        raise BuildSettingError("DIFFUSION_LAB_SEED", value, allowed)
    seed = int(value)
    if seed > MAX_SEED:
        raise BuildSettingError("DIFFUSION_LAB_SEED", value, allowed)
    return seed


# --- the device -----------------------------------------------------------------------------------

# The device types a build may run on, in the order an empty DIFFUSION_LAB_DEVICE tries them.
DEVICE_ORDER = ("cuda", "mps", "cpu")

# What Part B's networks run at on each device type when their recipe says "auto": the rule that
# `mnist.precision.bf16_is_fast` implements, in words (tests/test_devices.py holds the two together).
PRECISION_RULES = {
    "cpu": "bf16 autocast where oneDNN reports native bf16 (AVX-512 BF16 or AMX), else fp32",
    "cuda": "bf16 autocast where torch reports bf16 on the card (natively from compute capability 8, Ampere), "
            "else fp32; no fp16",
    "mps": "fp32 (bf16 autocast on MPS is partial: fp32 until measured on Apple hardware)",
}
PRECISION_WORDS = {"bf16": "bf16 autocast", "fp32": "fp32"}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


@dataclass(frozen=True)
class Accelerators:
    """What this machine has besides its CPU: how many CUDA devices torch sees, and whether
    Apple's MPS is there."""

    cuda: int = 0
    mps: bool = False

    @classmethod
    def detect(cls) -> "Accelerators":
        """What torch sees on this machine now."""
        return cls(cuda=torch.cuda.device_count() if torch.cuda.is_available() else 0, mps=_mps_available())

    def default(self) -> str:
        """The first of cuda, mps and cpu that this machine has."""
        return "cuda" if self.cuda else "mps" if self.mps else "cpu"

    def allowed(self) -> str:
        """The values DIFFUSION_LAB_DEVICE may take here, in words: "cuda, cuda:0 to cuda:1 or cpu"."""
        values = []
        if self.cuda:
            values += ["cuda", "cuda:0" if self.cuda == 1 else f"cuda:0 to cuda:{self.cuda - 1}"]
        if self.mps:
            values.append("mps")
        return _one_of(values + ["cpu"])


def _refuse_device(value: str, why: str) -> BuildSettingError:
    return BuildSettingError("DIFFUSION_LAB_DEVICE", value, why)


def choose_device(requested: str | None, available: Accelerators | None = None) -> torch.device:
    """The build's device: `requested` (cpu, cuda, cuda:N or mps) when this machine has it, the first
    of cuda, mps and cpu it has when `requested` is empty or None. `available` says what the
    machine has (default: what torch sees). Raises BuildSettingError (one line) otherwise."""
    available = Accelerators.detect() if available is None else available
    value = (requested or "").strip()
    if not value:
        return torch.device(available.default())
    match = re.fullmatch(r"cpu|mps|cuda(?::(\d+))?", value)
    if match is None:
        raise _refuse_device(requested, f"the device must be cpu, cuda, cuda:N or mps; this machine allows "
                                        f"{available.allowed()} (empty: the first of cuda, mps and cpu it has, "
                                        f"{available.default()} here)")
    if value.startswith("cuda") and not available.cuda:
        raise _refuse_device(requested, f"CUDA is not available here (torch {torch.__version__} sees no CUDA GPU); "
                                        f"use {available.allowed()}")
    if value.startswith("cuda") and match.group(1) is not None and int(match.group(1)) >= available.cuda:
        count = available.cuda
        raise _refuse_device(requested, f"this machine has {count} CUDA device{'s' if count != 1 else ''}: "
                                        f"use {available.allowed()}")
    if value == "mps" and not available.mps:
        raise _refuse_device(requested, f"MPS is not available here (torch {torch.__version__} sees no Apple GPU; "
                                        f"MPS needs an Apple-silicon Mac); use {available.allowed()}")
    return torch.device(value)


def network_precision(device: torch.device) -> str:
    """What Part B's networks run at on `device` by its rule when their recipe says "auto": "bf16"
    or "fp32" (`mnist.precision.device_precision`, the rule training and sampling follow)."""
    return device_precision(device)


def _check_precision(value: str) -> str:
    value = value.strip()
    if value not in ("auto", *PRECISIONS):
        raise BuildSettingError("DIFFUSION_LAB_PRECISION", value,
                                f"the precision must be auto, {_one_of(PRECISIONS)} "
                                "(or empty for auto: the device's rule, or a shared store's precision)")
    return value


def _check_cache_url(value: str) -> str:
    value = value.strip()
    problem = value and remote.check_url(value)
    if problem:
        raise BuildSettingError("DIFFUSION_LAB_CACHE_URL", value, problem)
    return value


@lru_cache(maxsize=None)
def _store_precision(url: str, profile: str, own: str) -> str:
    """The precision a build of `profile` adopts with the store at `url` (`remote.adopted_precision`),
    said once per process where it is not the device's own."""
    adopted = remote.adopted_precision(remote.store_for(url), profile, own)
    if adopted != own:
        print(f"run cache: {url} holds the {profile} runs at {adopted}; this build computes at {adopted} too "
              f"(not this device's {own}), so that it reads them; PRECISION={own} computes everything here "
              f"at {own}", file=sys.stderr)
    return adopted


def device_line(device_type: str, name: str, precision: str, threads: int | None = None) -> str:
    """"cpu (AMD EPYC 9654, AVX-512 BF16; bf16 autocast; 1 thread)", "mps (Apple M2; fp32)": the
    device type, its model, the precision of Part B's networks, and on the CPU the threads."""
    parts = [name, PRECISION_WORDS.get(precision, precision)]
    if threads is not None:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    return f"{device_type} ({'; '.join(parts)})"


def device_name(device: torch.device) -> str:
    """The model of the chip that computes: the CUDA card's name, else the CPU's (an MPS GPU is on
    the same chip as the CPU: "Apple M2"), with its vector instructions on the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return machine.cpu_model()
    return machine.cpu_description()


def _check_cache(value: str) -> Path:
    """The cache folder, created if missing; refused when it is a file or cannot be created. A
    read-only cache is fine while it holds every run the build asks for: a run that must be stored
    in it says so where it happens (`runs.CacheNotWritable`)."""
    path = Path(value).expanduser().resolve()

    def refuse(why: str) -> BuildSettingError:
        return BuildSettingError("DIFFUSION_LAB_CACHE", value,
                                 f"the run cache must be a folder, but {why}")

    if path.exists() and not path.is_dir():
        raise refuse(f"{path} is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocker = next((parent for parent in path.parents if parent.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise refuse(f"{path} cannot be created: {blocker} is a file") from None
        raise refuse(f"{path} cannot be created: {error.strerror or type(error).__name__}"
                     f" in {blocker or path.anchor}") from None
    return path


def _device_description(device: torch.device, precision: str | None = None) -> str:
    threads = torch.get_num_threads() if device.type == "cpu" else None
    return device_line(device.type, device_name(device), precision or network_precision(device), threads)


@dataclass(frozen=True)
class BuildContext:
    profile: str
    backend: str
    device: torch.device
    seed: int
    cache_dir: Path
    force: bool
    precision_setting: str = "auto"  # DIFFUSION_LAB_PRECISION: auto, bf16 or fp32
    cache_url: str = ""  # DIFFUSION_LAB_CACHE_URL: a shared store (`runcache.remote`), "" for none

    @property
    def recipes(self) -> Profile:
        """This build's profile: its recipes, showcase sizes and quality bar. The one place a build
        looks its profile up; every run reads its recipe here and records it in its params."""
        return get_profile(self.profile)

    @property
    def device_description(self) -> str:
        """This build's device, its model, the precision of Part B's networks and (CPU) the threads:
        "cpu (AMD EPYC 9654, AVX-512 BF16; bf16 autocast; 1 thread)", "cuda (NVIDIA H200; bf16
        autocast)", "mps (Apple M2; fp32)"."""
        return _device_description(self.device, self.precision)

    def describe_device(self, precision: str | None = None) -> str:
        """`device_description` with a run's own precision ("bf16", "fp32") in place of "auto"'s."""
        return _device_description(self.device, precision)

    @property
    def precision(self) -> str:
        """What Part B's networks run at in this build where their recipe says "auto" ("bf16" or
        "fp32"), and the precision in every run's cache key: DIFFUSION_LAB_PRECISION where it names
        one; else, with a shared store, the store's precision for the profile where it holds none at
        the device's (`remote.adopted_precision`); else the device's rule (`network_precision`)."""
        if self.precision_setting in PRECISIONS:
            return self.precision_setting
        own = network_precision(self.device)
        return _store_precision(self.cache_url, self.profile, own) if self.cache_url else own

    @property
    def threads(self) -> int:
        """The threads torch computes with in this process now (a prefetch worker sets its own)."""
        return torch.get_num_threads()

    @classmethod
    def from_env(cls, accelerators: Accelerators | None = None, **overrides) -> "BuildContext":
        """The build's settings from DIFFUSION_LAB_* (empty or unset: the default), each checked;
        a field given in `overrides` is taken as it is and its variable is not read. `accelerators`
        says what the machine has (default: what torch sees).
        Raises BuildSettingError (one line) for the first setting that is not allowed."""
        env = os.environ
        readers = dict(
            profile=lambda: _check_profile(env.get("DIFFUSION_LAB_PROFILE") or default_profile()),
            backend=lambda: _check_backend(env.get("DIFFUSION_LAB_BACKEND") or "mnist"),
            device=lambda: choose_device(env.get("DIFFUSION_LAB_DEVICE"), accelerators),
            seed=lambda: _check_seed(env.get("DIFFUSION_LAB_SEED") or "0"),
            cache_dir=lambda: _check_cache(env.get("DIFFUSION_LAB_CACHE") or ".cache"),
            force=lambda: env.get("DIFFUSION_LAB_FORCE", "") not in ("", "0", "false", "no"),
            precision_setting=lambda: _check_precision(env.get("DIFFUSION_LAB_PRECISION") or "auto"),
            cache_url=lambda: _check_cache_url(env.get("DIFFUSION_LAB_CACHE_URL") or ""),
        )
        values = {name: overrides[name] if name in overrides else read() for name, read in readers.items()}
        values.update(overrides)
        return cls(**values)
