"""What a build is asked to do, read once from the environment the Makefile sets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from diffusion_lab.profiles import check_backend, check_profile, default_profile


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
        env = os.environ
        device = torch.device(env.get("DIFFUSION_LAB_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))
        values = dict(
            profile=check_profile(env.get("DIFFUSION_LAB_PROFILE") or default_profile()),
            backend=check_backend(env.get("DIFFUSION_LAB_BACKEND") or "mnist"),
            device=device,
            seed=int(env.get("DIFFUSION_LAB_SEED") or 0),
            cache_dir=Path(env.get("DIFFUSION_LAB_CACHE") or ".cache").resolve(),
            force=env.get("DIFFUSION_LAB_FORCE", "") not in ("", "0", "false", "no"),
        )
        values.update(overrides)
        return cls(**values)
