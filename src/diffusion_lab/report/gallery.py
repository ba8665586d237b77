"""The home page's gallery: one headline figure per section, picked by the section's page script.

A page script calls `headline(page)` right after the figure that best shows what its section is
about; the home page (rendered after every content page) shows those figures, as the build
rendered them, each linking to its figure on its page.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from diffusion_lab.report.page import Page


@dataclass(frozen=True)
class Headline:
    """A section's headline figure: the page's title and path, the figure's file and number."""

    title: str
    page: str  # relative to docs/, as Page.path
    image: str  # relative to docs/
    number: int  # the figure's number on its page (pymdownx numbers captions from 1)

    def link(self, from_page: str) -> str:
        """The figure's place on its page, relative to the page at `from_page`."""
        return f"{_relative(self.page, from_page)}#__figure-caption_{self.number}"

    def image_link(self, from_page: str) -> str:
        return _relative(self.image, from_page)


def _relative(path: str, from_page: str) -> str:
    return posixpath.relpath(path, posixpath.dirname(from_page) or ".")


# This build's headlines in the order their pages were rendered; the home page empties it.
HEADLINES: list[Headline] = []


def headline(page: Page) -> None:
    """Marks the figure just added to `page` as its section's headline result. One per page: the
    first call wins, so a call inside a loop of figures picks the loop's first."""
    if not page.figure_assets:
        raise ValueError(f"{page.path} has no figure yet to be its headline")
    if any(h.page == page.path for h in HEADLINES):
        return
    HEADLINES.append(Headline(page.title, page.path, page.figure_assets[-1], len(page.figure_assets)))


def take_headlines() -> list[Headline]:
    """The headlines registered so far, emptying the registry (`mkdocs serve` rebuilds start empty)."""
    taken = list(HEADLINES)
    HEADLINES.clear()
    return taken


def gallery_markdown(headlines: list[Headline], from_page: str) -> str:
    """Material's grid of cards: each headline figure, linked to its place, under its section's title."""
    if not headlines:
        return ""
    cards = []
    for item in headlines:
        target = item.link(from_page)
        cards.append(
            f"-   [![{item.title}]({item.image_link(from_page)}){{ .no-lightbox loading=lazy }}]({target})\n\n"
            f"    [**{item.title}**]({target})\n"
        )
    return '<div class="grid cards gallery" markdown>\n\n' + "\n".join(cards) + "\n</div>\n"
