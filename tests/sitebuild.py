"""Building the site from a test: a strict mkdocs build in a subprocess, on a chosen profile."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The write-up's sections, in nav order, as built pages; the course's flow-matching pages after them.
SECTION_PAGES = [
    "part-a/stock-pipeline/index.html",
    "part-a/sampling-loops/index.html",
    "part-a/editing/index.html",
    "part-a/illusions/index.html",
    "part-b/unet/index.html",
    "part-b/single-step-denoiser/index.html",
    "part-b/time-conditioned-ddpm/index.html",
    "part-b/class-conditioned-ddpm/index.html",
]
FLOW_PAGES = ["part-b/flow-matching/index.html", "part-b/ddpm-vs-flow/index.html"]


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
