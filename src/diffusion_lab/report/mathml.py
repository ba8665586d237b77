"""Formulas as MathML, written at build time: the pages need no script and no network to show them.

pymdownx.arithmatex (generic mode) keeps each formula's TeX untouched in
`<span class="arithmatex">\\(...\\)</span>` (inline) or `<div class="arithmatex">\\[...\\]</div>`
(display); `render_math` replaces each with the MathML that latex2mathml makes of it, which
browsers draw natively.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_FORMULA = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', flags=re.S)
_DELIMITERS = {"span": (r"\(", r"\)", "inline"), "div": (r"\[", r"\]", "block")}


class FormulaError(ValueError):
    """A formula latex2mathml cannot convert; the message quotes it."""


def _to_mathml(match: re.Match) -> str:
    tag, escaped = match.group(1), match.group(2)
    opening, closing, display = _DELIMITERS[tag]
    tex = html.unescape(escaped).strip()
    if not (tex.startswith(opening) and tex.endswith(closing)):
        raise FormulaError(f"formula without its {opening} ... {closing} delimiters: {tex!r}")
    tex = tex[len(opening):-len(closing)]
    try:
        mathml = convert(tex, display=display)
    except Exception as error:  # latex2mathml raises many kinds; any of them means this formula
        raise FormulaError(f"cannot convert the formula {tex!r} to MathML: {error}") from error
    # The TeX stays in the title: hovering over a formula shows the source to copy.
    return f'<{tag} class="formula" title="{html.escape(tex)}">{mathml}</{tag}>'


def render_math(page_html: str) -> str:
    """`page_html` with every arithmatex formula replaced by MathML."""
    return _FORMULA.sub(_to_mathml, page_html)
