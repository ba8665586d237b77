"""The tiny build's home page (gallery, deviations summary, measured cost) and its Deviations page."""

import re
from pathlib import Path

from diffusion_lab.experiments.parta_plan import plan_for
from diffusion_lab.profiles import get_profile
from diffusion_lab.report.deviations import WRITE_UP_MODEL, part_a_deviations, part_b_deviations
from sitebuild import SECTION_PAGES

CONTENT_PAGES = SECTION_PAGES


def _article(page: Path) -> str:
    html = page.read_text()
    return html[html.index("<article"):html.index("</article>")]


def _target(page: Path, href: str) -> tuple[Path, str]:
    address, _, anchor = href.partition("#")
    target = (page.parent / address).resolve()
    return (target / "index.html" if target.is_dir() else target), anchor


def test_home_opens_with_one_headline_figure_per_section(builds):
    cold, _ = builds
    home = cold / "index.html"
    article = _article(home)
    gallery = article[article.index('class="grid cards gallery"'):]
    gallery = gallery[:gallery.index("</div>")]
    cards = re.findall(r'<a href="([^"]+)"><img alt="([^"]+)"[^>]*src="([^"]+)"', gallery)
    linked = {str(_target(home, href)[0].relative_to(cold)) for href, _, _ in cards}
    assert set(CONTENT_PAGES) <= linked, f"sections without a headline: {set(CONTENT_PAGES) - linked}"
    assert len(linked) == len(cards), "a section has two headline figures"
    for href, _, src in cards:
        target, anchor = _target(home, href)
        image = (home.parent / src).resolve()
        assert image.is_file() and image.stat().st_size > 0, src
        # the picture is the figure the section rendered, and the link lands on that figure
        assert f'id="{anchor}"' in target.read_text(), href
        figure = target.read_text().split(f'id="{anchor}"', 1)[1].split("</figure>", 1)[0]
        assert Path(src).name in figure, f"{href} does not show {src}"
    # the gallery comes before anything else under the title
    assert article.index("grid cards gallery") < article.index("<h2")


def test_home_is_first_in_the_nav_and_deviations_after_the_content(builds):
    cold, _ = builds
    html = (cold / "index.html").read_text()
    nav = list(dict.fromkeys(re.findall(r'href="([^"#]*)" class="md-nav__link', html)))
    assert nav[0] == "."
    assert nav.index("deviations/") > max(nav.index(page.removesuffix("index.html")) for page in CONTENT_PAGES)


def test_home_states_no_unmeasured_cost_and_summarises_the_deviations(builds):
    cold, _ = builds
    text = re.sub(r"<[^>]+>", "", _article(cold / "index.html"))
    assert "H100" not in text and "two minutes" not in text
    part_a = part_a_deviations(plan_for("deepfloyd"), plan_for("mnist"), WRITE_UP_MODEL)
    part_b = part_b_deviations(get_profile("full"), get_profile("tiny"))
    assert f"{len(part_b.rows)} of {part_b.compared} values differ in all" in text
    assert "Part A: noise model: MNIST" in text and len(part_a.rows) > 0
    measured = re.search(r"Computing the (\d+) runs behind the pages took (\d+) s", text)
    assert measured and int(measured.group(1)) > 10, "no measured cost of this build's runs"


def test_deviations_page_lists_the_tiny_profile_against_the_course(builds):
    cold, _ = builds
    page = cold / "deviations/index.html"
    article = _article(page)
    text = re.sub(r"<[^>]+>", " ", article)
    part_b = part_b_deviations(get_profile("full"), get_profile("tiny"))
    assert f"{len(part_b.rows)} of the {part_b.compared} values of Part B's recipes differ" in text
    rows = re.findall(r"<tr>\s*<td>[^<]*</td>\s*<td>width D \(hidden channels\)</td>\s*<td>(\d+)</td>\s*<td>(\d+)</td>",
                      article)
    assert ("128", "8") in rows and ("64", "8") in rows
    for href in re.findall(r'href="([^"#]+)"', article):
        target, _ = _target(page, href)
        assert target.is_file(), f"broken link {href}"
