"""The nav leads with the report: the site's tabs are Report, Code behind the figures, Reference and
Build (mkdocs.yml's navigation.tabs; gen/nav_hook.py groups the report's pages), and a page's
sidebar holds its own tab's pages only (navigation.prune): a report page does not list the hundred-
odd code and reference modules, which the Code and Reference tabs list in full."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from sitebuild import FLOW_PAGES, SECTION_PAGES

REPORT_PAGES = ["index.html", *SECTION_PAGES, "part-a/try-it/index.html", *FLOW_PAGES, "deviations/index.html"]
TABS = ["Report", "Code behind the figures", "Reference", "Build"]
# A report page's sidebar: the report's sections, a link to each other tab, the page's own headings.
MOST_LINKS_ON_A_REPORT_PAGE = 40


class _Nav(HTMLParser):
    """The links of the primary nav (the sidebar) and the tabs of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # inside <nav class="md-nav--primary">: how many <nav> deep
        self.links: list[str] = []
        self.tabs: list[tuple[str, str]] = []
        self._tab: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "nav" and (self.depth or "md-nav--primary" in classes):
            self.depth += 1
        if tag == "a" and self.depth and "md-nav__link" in classes:
            self.links.append(attributes["href"])
        if tag == "a" and "md-tabs__link" in classes:
            self._tab = [attributes["href"]]

    def handle_data(self, data):
        if self._tab is not None and data.strip():
            self._tab.append(data.strip())

    def handle_endtag(self, tag):
        if tag == "nav" and self.depth:
            self.depth -= 1
        if tag == "a" and self._tab is not None:
            self.tabs.append((self._tab[0], " ".join(self._tab[1:])))
            self._tab = None


def nav_of(page: Path) -> _Nav:
    parser = _Nav()
    parser.feed(page.read_text())
    return parser


def _site_path(site: Path, page: Path, href: str) -> str:
    """`href` on `page` as a path from the site's root ("code/diffusion_lab.sampling/")."""
    target = (page.parent / href.split("#")[0]).resolve()
    relative = target.relative_to(site.resolve()).as_posix()
    if relative == ".":
        return "/"
    return relative + "/" if target.is_dir() else relative


def test_the_tabs_are_report_code_reference_build(builds):
    cold, _ = builds
    for page in ("index.html", "part-b/unet/index.html", "build/index.html"):
        tabs = nav_of(cold / page).tabs
        assert [title for _, title in tabs] == TABS, f"{page}: {tabs}"
    home = cold / "index.html"
    targets = [_site_path(cold, home, href) for href, _ in nav_of(home).tabs]
    assert targets[0] == "/" and targets[1].startswith("code/") and targets[2].startswith("reference/")
    assert targets[3] == "build/"


def test_a_report_pages_sidebar_lists_the_report_not_the_modules(builds):
    """Today's sidebar (before the tabs) listed every code and reference module under the report on
    every page: over a hundred links. A report page now lists the report's pages and one link into
    each other tab."""
    cold, _ = builds
    for name in REPORT_PAGES:
        page = cold / name
        paths = [_site_path(cold, page, href) for href in nav_of(page).links if not href.startswith("#")]
        assert len(paths) <= MOST_LINKS_ON_A_REPORT_PAGE, f"{name}'s sidebar has {len(paths)} links: {paths}"
        into = {tab: [path for path in paths if path.startswith(f"{tab}/")] for tab in ("code", "reference")}
        assert all(len(links) <= 1 for links in into.values()), f"{name}'s sidebar lists modules: {into}"
        for report_page in REPORT_PAGES:
            listed = report_page.removesuffix("index.html")
            assert (listed or "/") in paths, f"{name}'s sidebar lacks {report_page}"


def test_the_code_and_reference_tabs_list_every_module(builds):
    cold, _ = builds
    for tab in ("code", "reference"):
        modules = sorted(path.parent.name for path in (cold / tab).glob("*/index.html"))
        assert len(modules) > 10, f"{tab}: {modules}"
        page = cold / tab / modules[0] / "index.html"
        listed = {_site_path(cold, page, href) for href in nav_of(page).links if not href.startswith("#")}
        missing = [module for module in modules if f"{tab}/{module}/" not in listed]
        assert not missing, f"the {tab} tab's sidebar lacks {missing}"
