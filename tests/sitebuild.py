"""Building the site from a test: `python -m diffusion_lab site` in a subprocess (the make-free
build, which runs a strict mkdocs build), on a chosen profile."""

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


# Where the session's tiny site is built to be served: under a path, as GitHub Pages serves a
# project's site (https://<owner>.github.io/<repository>/). The browser tests serve it there; the
# path matters to 404.html, whose asset links are absolute (mkdocs.yml's site_url, from SITE_URL).
SITE_PATH = "/fun-with-diffusion/"
SITE_URL = "https://example.github.io" + SITE_PATH


# The command the README's "Without make" documents, less its options: the settings go in its
# environment, as the Makefile exports them, so that a bad one reaches the build's own check.
SITE_COMMAND = [sys.executable, "-m", "diffusion_lab", "site"]


def build_site(site_dir: Path, cache_dir: Path, profile: str = "tiny", backend: str = "mnist",
               **extra_env: str) -> subprocess.CompletedProcess:
    """A strict build of the site into `site_dir`, with DIFFUSION_LAB_* set as `make site` sets them;
    no shared store and the device's precision unless `extra_env` names them."""
    env = dict(
        os.environ,
        DIFFUSION_LAB_PROFILE=profile,
        DIFFUSION_LAB_BACKEND=backend,
        DIFFUSION_LAB_CACHE=str(cache_dir),
        DIFFUSION_LAB_FORCE="",
        DIFFUSION_LAB_DEVICE="cpu",
        DIFFUSION_LAB_CACHE_URL="",
        DIFFUSION_LAB_PRECISION="",
        DISABLE_MKDOCS_2_WARNING="true",
        NO_MKDOCS_2_WARNING="1",
    )
    env.update(extra_env)
    return subprocess.run(
        [*SITE_COMMAND, "--site-dir", str(site_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )
