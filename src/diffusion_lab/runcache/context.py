"""What a build is asked to do, read once from the environment the Makefile sets.

`BuildContext.from_env` checks every setting it reads before any work: a bad one is a
`BuildSettingError` whose message is one line naming the variable, its value and what is allowed
(the mkdocs hook `gen/settings_hook.py` turns it into a build error before any page script runs).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from diffusion_lab.profiles import BACKEND_NAMES, PROFILE_NAMES, default_profile

MAX_SEED = 2**63 - 1

# The Makefile variable behind each setting, for the message.
_MAKE_VARIABLES = {
    "DIFFUSION_LAB_PROFILE": "PROFILE",
    "DIFFUSION_LAB_BACKEND": "BACKEND",
    "DIFFUSION_LAB_SEED": "SEED",
    "DIFFUSION_LAB_CACHE": "CACHE_DIR",
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


def _check_device(value: str) -> torch.device:
    match = re.fullmatch(r"cpu|cuda(?::(\d+))?", value.strip())
    if match is None:
        raise BuildSettingError("DIFFUSION_LAB_DEVICE", value,
                                "the device must be cpu, cuda or cuda:N (or empty for cuda when available, else cpu)")
    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BuildSettingError("DIFFUSION_LAB_DEVICE", value,
                                    f"CUDA is not available here (torch {torch.__version__} sees no GPU); use cpu")
        count = torch.cuda.device_count()
        if match.group(1) is not None and int(match.group(1)) >= count:
            raise BuildSettingError("DIFFUSION_LAB_DEVICE", value,
                                    f"this machine has {count} CUDA device{'s' if count != 1 else ''}: "
                                    f"use cuda:0 to cuda:{count - 1}, or cpu")
    return torch.device(value.strip())


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


def _device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


@dataclass(frozen=True)
class BuildContext:
    profile: str
    backend: str
    device: torch.device
    seed: int
    cache_dir: Path
    force: bool

    @property
    def device_kind(self) -> str:
        """What the cache key records: results from another kind of device are not reused."""
        if self.device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(self.device)}"
        return "cpu"

    @property
    def device_description(self) -> str:
        return _device_description(self.device)

    @classmethod
    def from_env(cls, **overrides) -> "BuildContext":
        """The build's settings from DIFFUSION_LAB_* (empty or unset: the default), each checked;
        a field given in `overrides` is taken as it is and its variable is not read.
        Raises BuildSettingError (one line) for the first setting that is not allowed."""
        env = os.environ
        readers = dict(
            profile=lambda: _check_profile(env.get("DIFFUSION_LAB_PROFILE") or default_profile()),
            backend=lambda: _check_backend(env.get("DIFFUSION_LAB_BACKEND") or "mnist"),
            device=lambda: _check_device(env.get("DIFFUSION_LAB_DEVICE")
                                         or ("cuda" if torch.cuda.is_available() else "cpu")),
            seed=lambda: _check_seed(env.get("DIFFUSION_LAB_SEED") or "0"),
            cache_dir=lambda: _check_cache(env.get("DIFFUSION_LAB_CACHE") or ".cache"),
            force=lambda: env.get("DIFFUSION_LAB_FORCE", "") not in ("", "0", "false", "no"),
        )
        values = {name: overrides[name] if name in overrides else read() for name, read in readers.items()}
        values.update(overrides)
        return cls(**values)
