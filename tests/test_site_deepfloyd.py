"""`make site BACKEND=deepfloyd` pointed at a tiny random-weight IF pipeline saved by the test.

Real IF weights cannot be had on these machines; this proves the whole Part A path of the site
runs on the diffusers backend, and that the pages say plainly which model drew them.
"""

import re
from dataclasses import replace

import pytest
from sitebuild import build_site

from diffusion_lab.backends.tiny_if import save_tiny_if_pipeline

PART_A_PAGES = [
    "part-a/stock-pipeline/index.html",
    "part-a/sampling-loops/index.html",
    "part-a/editing/index.html",
    "part-a/illusions/index.html",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("deepfloyd-site")
    settings = save_tiny_if_pipeline(root / "tiny-if", seed=0)
    # Two stage II steps, not 50: the tiny stage II takes seconds per image per 50 steps here.
    settings = replace(settings, upsample_figures=True, stage2_steps=2)
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


def test_part_b_is_unchanged_by_the_backend(site, builds):
    """Part B never evaluates Part A's noise model: its figures are the MNIST build's, byte for byte."""
    cold, _ = builds
    figures = sorted(path.relative_to(cold) for path in (cold / "part-b/img").rglob("*.png"))
    assert len(figures) >= 10
    assert sorted(path.relative_to(site) for path in (site / "part-b/img").rglob("*.png")) == figures
    differing = [str(path) for path in figures if (site / path).read_bytes() != (cold / path).read_bytes()]
    assert not differing, differing
    html = (site / "part-b/class-conditioned-ddpm/index.html").read_text()
    assert "<td>backend</td>" in html and "Fréchet" in html


def test_stage_two_upsamples_every_part_a_page_when_asked(site):
    """DIFFUSION_LAB_IF_UPSAMPLE=1: each page's results again through stage II (the tiny one: 32 -> 64)."""
    for page in PART_A_PAGES:
        html = (site / page).read_text()
        assert re.search(r"stage II", html), f"{page} shows no stage II figure"
    editing = (site / "part-a/editing/index.html").read_text()
    assert editing.count("upsampled to 64×64 by stage II") >= 2
    stock = (site / "part-a/stock-pipeline/index.html").read_text()
    assert "IFPipeline" in stock and "32×32 -&gt; 64×64" in stock


def test_deviations_on_the_if_backend_are_the_models_only(site):
    """The deepfloyd plan is the write-up's: only the tiny stand-in model differs from IF."""
    html = (site / "deviations/index.html").read_text()
    part_a = html.split('id="part-a-the-model-and-the-plan"', 1)[1].split("<h2", 1)[0]
    assert "<td>the plan</td>" not in part_a and "<td>noise model</td>" in part_a and "TINY RANDOM-WEIGHT" in part_a
    assert "3 × 32 × 32" in part_a and "3 × 64 × 64" in part_a
    assert "training timesteps T" not in part_a  # IF's schedule on both sides


def test_home_gallery_on_the_if_backend(site):
    html = (site / "index.html").read_text()
    assert 'class="grid cards gallery"' in html
    for page in PART_A_PAGES:
        assert f'href="{page.removesuffix("index.html")}#__figure-caption_' in html, page
