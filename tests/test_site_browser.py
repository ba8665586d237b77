"""The tiny site as a reader's browser sees it: every page opened in headless Chromium over http.

tests/browser/check_site.mjs (playwright-core driving Debian's Chromium) serves the built site on
127.0.0.1, opens each page and reports broken images, broken internal links (a missing page or
#fragment), console errors, failed or external requests, and figures whose provenance does not
link the reference entry of the function that computed them; on the Try-it page it waits for the
model and onnxruntime-web to load and runs a sample; and it asks for a missing address, which must
get the site's 404 page with its assets. The site is the session's tiny strict build
(conftest.builds), built for and served under the sub-path GitHub Pages serves a project's site at
(sitebuild.SITE_PATH, /fun-with-diffusion/), without cross-origin-isolation headers, as GitHub Pages
sends none; a small hand-made site proves that the checker finds what it looks for.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image
from sitebuild import SITE_PATH

REPO = Path(__file__).resolve().parents[1]
CHECKER = REPO / "tests/browser/check_site.mjs"

SITE_PROBLEMS = ("broken_image", "broken_link", "console_error", "failed_request", "external_request",
                 "try_it_failed", "broken_404_page")
PROVENANCE_PROBLEMS = ("figure_without_provenance", "provenance_without_reference")


def _missing_tool() -> str | None:
    """Why the browser check cannot run here, with how to make it run; None when it can."""
    if shutil.which("chromium") is None:
        return "Chromium is not installed (as root: apt-get install chromium)"
    if shutil.which("node") is None:
        return "Node.js is not installed (as root: apt-get install nodejs npm; then npm ci)"
    if not (REPO / "node_modules/playwright-core/package.json").is_file():
        return "playwright-core is not installed: run `npm ci` in the repository root"
    return None


@pytest.fixture(scope="module")
def browser_ready() -> None:
    missing = _missing_tool()
    if missing:
        pytest.skip(f"headless-browser check skipped: {missing}")


def check_site(site: Path, base_path: str = "/") -> dict:
    """The checker's JSON report on `site` served under `base_path` (exit 0 or 1: it ran; 2: it
    failed, which fails the test)."""
    done = subprocess.run(
        ["node", str(CHECKER), "--chromium", shutil.which("chromium"), "--base-path", base_path, str(site)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode in (0, 1), f"the browser check failed to run:\n{done.stderr[-5000:]}"
    return json.loads(done.stdout)


def problems_of(report: dict, kinds: tuple[str, ...]) -> dict[str, list[str]]:
    found = defaultdict(list)
    for problem in report["problems"]:
        if problem["kind"] in kinds:
            found[problem["kind"]].append(f"{problem['page']}: {problem['detail']}")
    return dict(found)


def describe(found: dict[str, list[str]], limit: int = 25) -> str:
    lines = []
    for kind, items in found.items():
        lines.append(f"{len(items)} {kind.replace('_', ' ')}:")
        lines += [f"  {item}" for item in items[:limit]]
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def tiny_report(browser_ready, request) -> dict:
    cold, _ = request.getfixturevalue("builds")  # requested only once the tools are known present
    return check_site(cold, SITE_PATH)


def test_the_browser_opened_every_page_of_the_tiny_site(tiny_report):
    assert tiny_report["base_url"].endswith(SITE_PATH), tiny_report["base_url"]
    cold = Path(tiny_report["site"])
    opened = {page["page"] for page in tiny_report["pages"]}
    on_disk = {
        "/" + str(path.relative_to(cold)).removesuffix("index.html")
        for path in cold.rglob("*.html")
    }
    assert opened == on_disk, f"not opened: {sorted(on_disk - opened)}"
    totals = tiny_report["totals"]
    assert totals["images"] >= 10 and totals["figures"] >= 10 and totals["internal_links_checked"] >= 100, totals


def test_no_broken_image_link_request_or_console_error(tiny_report):
    found = problems_of(tiny_report, SITE_PROBLEMS)
    assert not found, "\n" + describe(found)


def test_every_figure_links_the_reference_entry_of_its_function(tiny_report):
    found = problems_of(tiny_report, PROVENANCE_PROBLEMS)
    assert not found, "\n" + describe(found)


def test_the_try_it_page_loads_its_model_and_runs_without_cross_origin_isolation(tiny_report):
    """Under the sub-path, with no COOP/COEP headers (GitHub Pages sends none, so no SharedArrayBuffer):
    the model and onnxruntime-web load and a sample runs every step (single-threaded WASM)."""
    [try_it] = tiny_report["try_it"]
    assert try_it["page"] == "/part-a/try-it/", try_it
    assert try_it["cross_origin_isolated"] is False, try_it
    assert try_it["state"] == "ready" and try_it["mode"] == "sample" and try_it["steps"] > 0, try_it


def test_a_missing_address_gets_the_404_page_with_its_assets(tiny_report):
    """GitHub Pages answers a missing address with 404.html, at any depth: its stylesheets, scripts
    and images load from the site's path (mkdocs' site_url, from SITE_URL at build time)."""
    assert tiny_report["not_found"]["status"] == 404, tiny_report["not_found"]
    assert tiny_report["not_found"]["links"] > 3, "the 404 page shows no navigation"


# --- the checker itself, on a site made by hand ------------------------------------------------------

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="data:,"></head>
<body><article>{body}</article></body></html>"""


def _pixel_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (1, 1), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def _provenance(href: str) -> str:
    return (f'<details class="provenance"><summary>Provenance</summary><table><tbody>'
            f'<tr><td>computed by</td><td><a href="{href}"><code>experiments.demo.run</code></a></td></tr>'
            f"</tbody></table></details>")


def _figure(src: str, caption: str) -> str:
    return f'<figure><p><img alt="" src="{src}"></p><figcaption><p>{caption}</p></figcaption></figure>'


FLAWED_BASE = "/flawed/"


def make_flawed_site(root: Path) -> Path:
    """A good page (a figure with its provenance linking a reference entry) and a flawed page with
    one of each problem: a missing image, a link to no page, a link to no #fragment, a figure
    without provenance, a provenance linking source instead of the reference, one linking the
    reference entry of another function, a console error, a link out of the site's path (served
    under FLAWED_BASE), a Try-it widget that failed to load; and a 404 page whose stylesheet is
    addressed from the domain's root (a build without SITE_URL, served under a sub-path)."""
    (root / "reference").mkdir(parents=True)
    (root / "good").mkdir()
    (root / "good/pixel.png").write_bytes(_pixel_png())
    (root / "reference/index.html").write_text(PAGE.format(
        title="Reference", body='<h2 id="diffusion_lab.experiments.demo.run">run</h2>'))
    (root / "good/index.html").write_text(PAGE.format(title="Good", body=(
        _figure("pixel.png", "Figure 1. Fine.")
        + _provenance("../reference/#diffusion_lab.experiments.demo.run")
        + '<p><a href="../reference/">reference</a> <a href="#top">top</a></p><h2 id="top">top</h2>')))
    (root / "index.html").write_text(PAGE.format(title="Flawed", body=(
        _figure("good/missing.png", "Figure 1. Its image is missing.")
        + _provenance("reference/#diffusion_lab.experiments.demo.run")
        + _figure("good/pixel.png", "Figure 2. Without provenance.")
        + _figure("good/pixel.png", "Figure 3. Provenance linking source code.")
        + _provenance("code/diffusion_lab.experiments.demo/#run")
        + _figure("good/pixel.png", "Figure 4. Provenance linking another function's entry.")
        + _provenance("reference/#diffusion_lab.experiments.demo.other")
        + '<p><a href="nowhere/">a page that does not exist</a>'
        + ' <a href="good/#no-such-heading">a heading that does not exist</a>'
        + ' <a href="/elsewhere/">a page outside the site path</a></p>'
        + '<div id="try-it" data-state="error"><p data-role="message">deliberately broken</p></div>'
        + "<script>console.error('deliberate error')</script>")))
    (root / "404.html").write_text(PAGE.format(title="Not found", body="<p>Not found.</p>").replace(
        "</head>", '<link rel="stylesheet" href="/assets/site.css"></head>'))
    (root / "assets").mkdir()
    (root / "assets/site.css").write_text("body { color: black; }")
    return root


def test_the_checker_reports_each_kind_of_problem(browser_ready, tmp_path):
    report = check_site(make_flawed_site(tmp_path / "site"), FLAWED_BASE)
    by_page = defaultdict(list)
    for problem in report["problems"]:
        by_page[problem["page"]].append((problem["kind"], problem["detail"]))
    flawed = by_page.pop("/")
    not_found_page = by_page.pop("/404.html")
    missing = by_page.pop(report["not_found"]["address"])
    assert not by_page, f"false alarms on the good pages: {dict(by_page)}"

    def found(kind: str, *words: str) -> bool:
        return any(k == kind and all(word in detail for word in words) for k, detail in flawed)

    assert found("broken_image", "good/missing.png"), flawed
    assert found("failed_request", "good/missing.png", "404"), flawed
    assert found("broken_link", "nowhere/", "404"), flawed
    assert found("broken_link", "good/#no-such-heading", '"no-such-heading"'), flawed
    assert found("figure_without_provenance", "figure 2", "Without provenance"), flawed
    assert found("provenance_without_reference", "figure 3", "code/diffusion_lab.experiments.demo/#run"), flawed
    assert found("provenance_without_reference", "figure 4", "another function"), flawed
    assert found("broken_link", "reference/#diffusion_lab.experiments.demo.other"), flawed
    assert found("console_error", "deliberate error"), flawed
    assert found("broken_link", "/elsewhere/", "outside the site's path /flawed/"), flawed
    assert found("try_it_failed", "deliberately broken"), flawed
    assert any(kind == "failed_request" and detail.endswith("/assets/site.css: HTTP 404")
               for kind, detail in not_found_page), not_found_page
    assert report["not_found"]["status"] == 404
    assert any(kind == "broken_404_page" and "/assets/site.css" in detail for kind, detail in missing), missing
    assert not found("figure_without_provenance", "figure 1") and not found("provenance_without_reference", "figure 1")
    assert {page["page"] for page in report["pages"]} == {"/", "/404.html", "/good/", "/reference/"}
