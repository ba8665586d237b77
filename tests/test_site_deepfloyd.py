"""`make site BACKEND=deepfloyd` pointed at a tiny random-weight IF pipeline saved by the test.

Real IF weights cannot be had on these machines; this proves the whole Part A path of the site
runs on the diffusers backend, and that the pages say plainly which model drew them.
"""

import re

import pytest
from sitebuild import build_site

from diffusion_lab.backends.tiny_if import save_tiny_if_pipeline

PART_A_PAGES = ["part-a/sampling-loops/index.html", "part-a/editing/index.html", "part-a/illusions/index.html"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("deepfloyd-site")
    settings = save_tiny_if_pipeline(root / "tiny-if", seed=0)
    built = build_site(root / "site", root / "cache", backend="deepfloyd", **settings.to_env())
    assert built.returncode == 0, built.stdout[-5000:] + built.stderr[-5000:]
    return root / "site"


def test_every_part_a_page_renders_on_the_if_backend(site):
    for page in PART_A_PAGES:
        assert (site / page).is_file(), f"missing {page}"


def test_pages_say_a_tiny_random_test_model_drew_them(site):
    for page in PART_A_PAGES:
        html = (site / page).read_text()
        assert re.search(r"tiny random", html, flags=re.I), f"{page} does not say a tiny random model drew it"
        assert "<td>backend</td>" in html


def test_part_b_is_unchanged_by_the_backend(site):
    html = (site / "part-b/class-conditioned-ddpm/index.html").read_text()
    assert "<td>backend</td>" in html and "Fréchet" in html
