"""Formulas become MathML at build time (report/mathml.py, run by the mkdocs hook)."""

import pytest

from diffusion_lab.report.mathml import FormulaError, render_math


def test_inline_and_display_formulas_become_mathml():
    page = ('<p>noise <span class="arithmatex">\\(x_t = \\sqrt{\\bar\\alpha_t}\\,x_0\\)</span> and</p>'
            '<div class="arithmatex">\\[a &lt; b\\]</div>')
    out = render_math(page)
    assert "arithmatex" not in out and "\\(" not in out
    assert out.count("<math") == 2
    assert 'display="inline"' in out and 'display="block"' in out
    assert "<msqrt>" in out and "<mi>x</mi>" in out
    assert "<mo>&lt;</mo>" in out or "<mo>&#x0003C;</mo>" in out  # the unescaped "<" is an operator
    assert out.startswith("<p>noise <span") and out.endswith("</div>")


def test_pages_without_formulas_are_untouched():
    page = '<p>a <span class="other">\\(x\\)</span> and <code>\\(y\\)</code></p>'
    assert render_math(page) == page


def test_a_broken_formula_stops_the_build_and_names_itself():
    with pytest.raises(FormulaError, match=r"x\^"):
        render_math('<span class="arithmatex">\\(x^\\)</span>')
    with pytest.raises(FormulaError, match="delimiters"):
        render_math('<span class="arithmatex">x</span>')
