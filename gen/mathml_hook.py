"""mkdocs hook (mkdocs.yml `hooks:`): every formula on every page becomes MathML at build time."""

from diffusion_lab.report.mathml import render_math


def on_page_content(html, page, config, files):
    return render_math(html)
