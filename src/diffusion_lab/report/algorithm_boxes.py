"""Typeset algorithm boxes (the write-up's Algorithms B.1-B.4) beside the code that implements them.

A box is numbered lines of Markdown with TeX formulas in \\( \\) (pymdownx.arithmatex keeps them,
the MathML hook draws them), indented like pseudocode. Beside it goes the real source of the
functions that implement it, read with `inspect` from the code this build runs and numbered with
the file's own lines, each with a link to its heading on the module's code page.
"""

from __future__ import annotations

import html
import importlib
import inspect
from dataclasses import dataclass
from typing import Sequence

from diffusion_lab.report.source_pages import code_link, display_name, fenced_python, split_function


INDENTS = (0, 1, 2)  # docs/stylesheets/report.css: .algorithm-indent-0 .. -2


@dataclass(frozen=True)
class Algorithm:
    """number: "B.1"; lines: (indent, Markdown) pairs, keywords in **bold**, formulas in \\( \\);
    note: what this build's recipe sets the symbols to, shown under the lines."""

    number: str
    title: str
    lines: tuple[tuple[int, str], ...]
    note: str = ""

    def __post_init__(self):
        for indent, text in self.lines:
            if indent not in INDENTS or "\n" in text:
                raise ValueError(f"algorithm {self.number}: each line is one line at an indent in {INDENTS} "
                                 f"(the levels the stylesheet sets), got {indent}, {text!r}")


def resolve(function: str):
    """The object a dotted name ("diffusion_lab.mnist.ddpm.time_conditioned_loss") names."""
    module, qualname = split_function(function)
    found = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def source_markdown(function: str, page_path: str) -> str:
    """The link to `function`'s code page (from the page at `page_path`) and its source, numbered
    with the file's own lines."""
    lines, first_line = inspect.getsourcelines(resolve(function))
    module, _ = split_function(function)
    last_line = first_line + len(lines) - 1
    return (
        f"[`{display_name(function)}`]({code_link(function, page_path)}), "
        f"lines {first_line}–{last_line} of `{display_name(module)}`:\n\n"
        + fenced_python("".join(lines).rstrip("\n"), first_line)
    )


def _line_html(indent: int, text: str) -> str:
    return f'<li class="algorithm-indent-{indent}" markdown="span">{text}</li>'


def algorithm_markdown(algorithm: Algorithm, implemented_by: Sequence[str], page_path: str,
                       see_also: Sequence[str] = ()) -> str:
    """The box of `algorithm` and, beside it, the source of each function of `implemented_by`
    (dotted names), then links to the `see_also` functions. `page_path`: where it is shown."""
    if not implemented_by:
        raise ValueError(f"algorithm {algorithm.number}: name the function that implements it")
    box = [
        '<div class="algorithm" markdown>',
        f'<p class="algorithm-title" markdown="span">**Algorithm {algorithm.number}** {html.escape(algorithm.title)}</p>',
        '<ol class="algorithm-lines" markdown>',
        *(_line_html(indent, text) for indent, text in algorithm.lines),
        "</ol>",
    ]
    if algorithm.note:
        box.append(f'<p class="algorithm-note" markdown="span">{algorithm.note}</p>')
    box.append("</div>")
    code = ['<div class="algorithm-code" markdown>', "Implemented by " + "\n\nand ".join(
        source_markdown(function, page_path) for function in implemented_by)]
    if see_also:
        links = ", ".join(f"[`{display_name(function)}`]({code_link(function, page_path)})" for function in see_also)
        code.append(f"See also {links}.\n")
    code.append("</div>")
    return "\n".join(['<div class="algorithm-pair" markdown>', *box, *code, "</div>"]) + "\n"
