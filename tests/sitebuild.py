"""Building the site from a test: a strict mkdocs build in a subprocess, on a chosen profile."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_site(site_dir: Path, cache_dir: Path, profile: str = "tiny", backend: str = "mnist",
               **extra_env: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        DIFFUSION_LAB_PROFILE=profile,
        DIFFUSION_LAB_BACKEND=backend,
        DIFFUSION_LAB_CACHE=str(cache_dir),
        DIFFUSION_LAB_FORCE="",
        DIFFUSION_LAB_DEVICE="cpu",
        DISABLE_MKDOCS_2_WARNING="true",
        NO_MKDOCS_2_WARNING="1",
        **extra_env,
    )
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )
