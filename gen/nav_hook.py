"""mkdocs hook (mkdocs.yml `hooks:`): the nav leads with the report.

The generated nav (SUMMARY.md, written by gen/build.py from the pages in the order they were saved)
lists the report's pages first (Home, Part A, Part B, Deviations), then the code pages, the
reference pages and the Build page. This hook puts the report's items into one section, "Report",
so that the top-level items, which the theme's navigation.tabs shows as tabs, are Report, Code
behind the figures, Reference and Build; with navigation.prune each page's sidebar then holds its
own tab's pages only, not the hundred-odd module pages of the other two.

The report is every top-level item before the first one that holds a page of the code, the
reference or the Build page, so a new report page needs nothing here.
"""

from __future__ import annotations

from mkdocs.structure.nav import Navigation, Section

REPORT = "Report"
# Where the items after the report live (gen/code.py, gen/reference.py, gen/build.py).
NOT_REPORT = ("code/", "reference/", "build.md")


def _pages(item) -> list:
    if isinstance(item, Section):
        return [page for child in item.children for page in _pages(child)]
    return [item] if getattr(item, "file", None) is not None else []


def _is_report(item) -> bool:
    return not any(page.file.src_uri.startswith(NOT_REPORT) for page in _pages(item))


def report_first(items: list) -> list:
    """`items` with its leading report items grouped into one section (unchanged without any)."""
    count = next((index for index, item in enumerate(items) if not _is_report(item)), len(items))
    if count == 0:
        return items
    report = Section(REPORT, items[:count])
    for child in report.children:
        child.parent = report
    return [report, *items[count:]]


def on_nav(nav: Navigation, config, files) -> Navigation:
    nav.items = report_first(nav.items)
    return nav
