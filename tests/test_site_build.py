"""The whole site, built strictly on the tiny profile, twice: cold, then warm from the cache."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPECTED_PAGES = [
    "index.html",
    "part-b/single-step-denoiser/index.html",
    "build/index.html",
]


def _build(site_dir: Path, cache_dir: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        DIFFUSION_LAB_PROFILE="tiny",
        DIFFUSION_LAB_BACKEND="mnist",
        DIFFUSION_LAB_CACHE=str(cache_dir),
        DIFFUSION_LAB_FORCE="",
        DIFFUSION_LAB_DEVICE="cpu",
        DISABLE_MKDOCS_2_WARNING="true",
        NO_MKDOCS_2_WARNING="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    cold = _build(root / "cold", root / "cache")
    assert cold.returncode == 0, cold.stdout + cold.stderr
    warm = _build(root / "warm", root / "cache")
    assert warm.returncode == 0, warm.stdout + warm.stderr
    return root / "cold", root / "warm"


def _pages(site: Path):
    return [site / page for page in EXPECTED_PAGES if page != "build/index.html"]


def test_every_section_is_rendered(builds):
    cold, _ = builds
    for page in EXPECTED_PAGES:
        assert (cold / page).is_file(), f"missing page {page}"


def test_every_figure_carries_its_provenance(builds):
    cold, _ = builds
    figures = 0
    for page in _pages(cold):
        html = page.read_text()
        after_each_figure = html.split("</figure>")[1:]
        figures += len(after_each_figure)
        for following in after_each_figure:
            assert following.lstrip().startswith('<details class="provenance">'), f"{page}: a figure without provenance"
        for block in re.findall(r'<details class="provenance">(.*?)</details>', html, flags=re.S):
            for field in ("seed", "profile", "backend", "device", "compute time", "cache", "versions", "git commit"):
                assert f"<td>{field}</td>" in block, f"{page}: provenance lacks {field}"
            assert "<code>tiny</code>" in block
    assert figures >= 1


def test_a_warm_rebuild_hits_the_cache_for_every_run(builds):
    cold, warm = builds
    cold_build = (cold / "build/index.html").read_text()
    warm_build = (warm / "build/index.html").read_text()
    runs = int(re.search(r"<td>runs</td>\s*<td>(\d+) \(", warm_build).group(1))
    assert runs >= 1
    assert f"{runs} cache hits, 0 computed" in warm_build
    assert f"0 cache hits, {runs} computed" in cold_build


def test_nav_lists_only_rendered_pages(builds):
    cold, _ = builds
    nav_links = set(re.findall(r'class="md-nav__link[^"]*"\s+href="([^"#]+)"', (cold / "index.html").read_text()))
    for link in nav_links:
        target = (cold / link).resolve()
        target = target / "index.html" if target.is_dir() or not target.suffix else target
        assert target.is_file(), f"nav links to {link}, which was not rendered"
