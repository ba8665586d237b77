"""The whole site, built strictly on the tiny profile, twice: cold, then warm from the cache."""

import re
from pathlib import Path

from sitebuild import FLOW_PAGES, SECTION_PAGES

EXPECTED_PAGES = ["index.html", *SECTION_PAGES, *FLOW_PAGES, "build/index.html"]


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


# Each run's "computed by" links: tests/test_reference_pages.py.


def test_provenance_shows_each_runs_own_backend(builds):
    cold, _ = builds
    html = "".join(page.read_text() for page in _pages(cold))
    # Training and Part B's measurements evaluate no noise model, and say so.
    assert "<td>none (this run evaluates no noise model)</td>" in html


def _run_counts(build_page: Path) -> tuple[int, int, int]:
    """(runs, cache hits, computed) from the Build page's summary row."""
    found = re.search(r"<td>runs</td>\s*<td>(\d+) \((\d+) cache hits, (\d+) computed\)", build_page.read_text())
    return tuple(int(group) for group in found.groups())


def test_a_warm_rebuild_hits_the_cache_for_every_run(builds):
    cold, warm = builds
    _, _, computed_cold = _run_counts(cold / "build/index.html")
    runs, hits, computed_warm = _run_counts(warm / "build/index.html")
    assert computed_cold >= 1
    assert runs >= 1 and hits == runs and computed_warm == 0


def test_nav_lists_only_rendered_pages(builds):
    cold, _ = builds
    nav_links = set(re.findall(r'class="md-nav__link[^"]*"\s+href="([^"#]+)"', (cold / "index.html").read_text()))
    for link in nav_links:
        target = (cold / link).resolve()
        target = target / "index.html" if target.is_dir() or not target.suffix else target
        assert target.is_file(), f"nav links to {link}, which was not rendered"


def test_formulas_are_mathml_and_pages_fetch_nothing_from_the_network(builds):
    cold, _ = builds
    pages = {page: (cold / page).read_text() for page in EXPECTED_PAGES}
    assert sum(html.count("<math") for html in pages.values()) >= 10
    for page, html in pages.items():
        assert 'class="arithmatex"' not in html, f"{page} has a formula left as TeX"
        remote = re.findall(r'<(?:script|link)[^>]*(?:src|href)="(https?://[^"]+)"', html)
        assert not remote, f"{page} loads {remote} from the network"


def test_flow_matching_pages_render_every_section(builds):
    """The course's flow-matching Part B and the DDPM-vs-flow comparison, section by section."""
    cold, _ = builds
    flow = (cold / "part-b/flow-matching/index.html").read_text()
    for heading in ("Denoising pure noise", "Time-conditioned flow matching", "Class-conditioned flow matching"):
        assert f">{heading}<" in flow, f"flow-matching page lacks {heading!r}"
    assert "the mean of the training digits" in flow and "The project's bar for this model is" in flow
    assert flow.count("<figure") >= 9, "loss curves, samples per checkpoint and ODE animations"
    compare = (cold / "part-b/ddpm-vs-flow/index.html").read_text()
    for heading in ("Unconditional samples", "Class-conditioned samples"):
        assert f">{heading}<" in compare, f"comparison page lacks {heading!r}"
    for sampler in ("DDPM, strided", "flow, Euler", "flow, Heun"):
        assert compare.count(f"<td>{sampler}</td>") >= 2, f"the comparison tables lack {sampler!r} rows"
    assert "evaluations per sample, 1,000 samples took" in compare
