"""The whole site, built strictly on the tiny profile, twice: cold, then warm from the cache."""

import re
from pathlib import Path

from sitebuild import FLOW_PAGES, SECTION_PAGES

EXPECTED_PAGES = ["index.html", *SECTION_PAGES, *FLOW_PAGES, "checks/index.html", "build/index.html"]


def _pages(site: Path):
    return [site / page for page in EXPECTED_PAGES if page != "build/index.html"]


def test_every_section_is_rendered(builds):
    cold, _ = builds
    for page in EXPECTED_PAGES:
        assert (cold / page).is_file(), f"missing page {page}"


def test_the_checks_page_runs_every_check_on_the_builds_model_and_all_pass(builds):
    cold, _ = builds
    html = (cold / "checks/index.html").read_text()
    rows = re.findall(r"<tr>\s*<td>(.*?)</td>.*?<td>(pass|<strong>fail</strong>)</td>", html, flags=re.S)
    assert len(rows) >= 10 and {verdict for _, verdict in rows} == {"pass"}, rows
    assert f"All {len(rows)} checks pass on this build." in html
    assert "inpainting 1 of this build keeps the known pixels to the last bit" in html


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
            for field in ("seed", "profile", "backend", "computed on", "compute time", "cache", "versions", "git commit"):
                assert f"<td>{field}</td>" in block, f"{page}: provenance lacks {field}"
            assert "<code>tiny</code>" in block
    assert figures >= 1


# Each run's "computed by" links: tests/test_reference_pages.py.


def test_provenance_shows_each_runs_own_backend(builds):
    cold, _ = builds
    html = "".join(page.read_text() for page in _pages(cold))
    # Training and Part B's measurements evaluate no noise model, and say so.
    assert "<td>none (this run evaluates no noise model)</td>" in html


def _run_counts(build_page: Path) -> tuple[int, int, int, int]:
    """(runs, read from the local cache, read from the shared store, computed) from the Build
    page's summary row."""
    found = re.search(r"<td>runs</td>\s*<td>(\d+) \((\d+) read from the local cache, (\d+) read from the shared "
                      r"store, (\d+) computed\)", build_page.read_text())
    return tuple(int(group) for group in found.groups())


def test_a_reader_served_by_the_store_computes_nothing(builds):
    """The second build starts from an empty cache with the store the first build pushed to: every
    run is read from the store, none computed, and its provenance still says where it was made."""
    cold, served = builds
    runs_cold, local_cold, remote_cold, computed_cold = _run_counts(cold / "build/index.html")
    runs, local, remote, computed = _run_counts(served / "build/index.html")
    assert computed_cold == runs_cold and local_cold == remote_cold == 0
    assert runs == runs_cold and remote == runs and local == computed == 0
    assert "read from the shared store" in (served / "part-b/unet/index.html").read_text()


def test_the_served_site_is_the_producers_byte_for_byte(builds):
    """Every figure, animation, model and data file of the store-served site has the bytes of the
    producer's; only pages (whose provenance says where each run came from) may differ."""
    cold, served = builds
    kinds = {".png", ".gif", ".svg", ".onnx", ".json", ".npz", ".csv"}
    def data_files(site):  # the search index holds the pages' text
        return sorted(path.relative_to(site) for path in site.rglob("*")
                      if path.suffix in kinds and path.relative_to(site).parts[0] != "search")

    files = data_files(cold)
    assert len(files) > 20 and data_files(served) == files
    differing = [str(path) for path in files if (cold / path).read_bytes() != (served / path).read_bytes()]
    assert not differing, f"{len(differing)} files differ, e.g. {differing[:5]}"


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
        # (the canonical link names the page's published address, from SITE_URL: nothing loads it)
        remote = re.findall(r'<(?:script|link)(?![^>]*rel="canonical")[^>]*(?:src|href)="(https?://[^"]+)"', html)
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
