"""Profiles say how much compute a build spends; the recipes themselves are data in mnist/recipes.py."""

from __future__ import annotations

from dataclasses import dataclass

import torch

PROFILE_NAMES = ("tiny", "quick", "full")
BACKEND_NAMES = ("mnist", "deepfloyd")


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    purpose: str
    cost: str


PROFILES = {
    "tiny": ProfileInfo("tiny", "tests and CI: every page renders, the pictures are noise", "seconds"),
    "quick": ProfileInfo("quick", "the default on a CPU: the same site, smaller models, fewer epochs", "minutes on 2 CPU cores"),
    "full": ProfileInfo("full", "the write-up's exact recipe; the default when CUDA is present", "about two minutes on one H100, hours on a CPU"),
}


def default_profile() -> str:
    return "full" if torch.cuda.is_available() else "quick"


def check_profile(name: str) -> str:
    if name not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}")
    return name


def check_backend(name: str) -> str:
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")
    return name
