"""Source pages and the provenance rows that link to them: anchors, line numbers, relative links."""

import ast
import re
import sys
import textwrap
from pathlib import Path

import markdown
import pytest

from diffusion_lab.report.page import NO_BACKEND, computed_by_markdown, run_backend_text
from diffusion_lab.report.source_pages import (
    code_link,
    code_page_path,
    display_name,
    fenced_python,
    module_file,
    modules_of,
    source_page_markdown,
    split_function,
    split_source,
)
from diffusion_lab.runcache.runs import RunRecord

SAMPLE = textwrap.dedent('''\
    #!/usr/bin/env python
    """A sample module.

    Its docstring is prose.
    """

    import functools

    LIMIT = 3


    def plain(x):
        """Twice x."""
        return 2 * x


    # The comment right above belongs to the definition.
    @functools.lru_cache
    def decorated(x):
        return plain(x) + LIMIT


    # --- a divider, apart from any definition ---


    class Holder:
        def method(self):
            return "```"  # a backtick run the fence must outgrow


    async def later():
        return None


    TAIL = plain(LIMIT)
''')


@pytest.fixture
def sample_module(tmp_path, monkeypatch):
    """SAMPLE installed as the importable module `sample_source_pkg.sample`."""
    package = tmp_path / "sample_source_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sample.py").write_text(SAMPLE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "sample_source_pkg.sample"
    for name in ("sample_source_pkg.sample", "sample_source_pkg"):
        sys.modules.pop(name, None)


def _line_of(text: str, needle: str) -> int:
    return text.splitlines().index(needle) + 1


def _render(page: str) -> str:
    """The page as the site renders it, with the extensions the source pages rely on."""
    return markdown.markdown(page, extensions=["attr_list", "toc", "pymdownx.superfences", "pymdownx.highlight"])


def test_docstring_is_prose_and_every_other_line_is_shown_once():
    docstring, blocks = split_source(SAMPLE)
    assert docstring.startswith("A sample module.")
    shown = [line for block in blocks for line in block.code.splitlines()]
    lines = SAMPLE.splitlines()
    docstring_lines = set(range(2, 6))
    expected = [line for number, line in enumerate(lines, 1) if number not in docstring_lines and line.strip()]
    assert [line for line in shown if line.strip()] == expected


def test_every_definition_starts_at_its_decorators_and_the_comment_above():
    _, blocks = split_source(SAMPLE)
    definitions = {block.name: block for block in blocks if block.name}
    assert list(definitions) == ["plain", "decorated", "Holder", "later"]
    assert definitions["plain"].first_line == _line_of(SAMPLE, "def plain(x):")
    assert definitions["decorated"].first_line == _line_of(SAMPLE, "# The comment right above belongs to the definition.")
    assert definitions["later"].kind == "async def"
    assert definitions["Holder"].kind == "class"
    divider = next(block for block in blocks if "divider" in block.code)
    assert divider.name is None


def test_source_page_has_an_exact_anchor_and_true_line_numbers_for_each_definition(sample_module):
    page = source_page_markdown(sample_module, intro="Intro for `{module}`.")
    assert page.startswith("# sample_source_pkg.sample\n")
    assert "Its docstring is prose." in page
    for name, first_line in (("plain", 12), ("decorated", 17), ("Holder", 26), ("later", 31)):
        heading = re.search(rf"^## .*\{{ #{name} .*\}}\n\n(`{{3,}})python linenums=\"(\d+)\"", page, flags=re.M)
        assert heading, f"no heading with id {name}"
        assert int(heading.group(2)) == first_line
    assert '````python linenums="26"' in page  # Holder's code holds ```, so its fence is longer
    html = _render(page)
    for name in ("plain", "decorated", "Holder", "later"):
        assert f'id="{name}"' in html
    assert re.search(r'class="linenos".*?<span class="normal">12</span>', html, flags=re.S)


def test_every_top_level_definition_of_a_real_module_gets_its_anchor():
    module = "diffusion_lab.experiments.partb"
    page = source_page_markdown(module)
    lines = module_file(module).read_text().splitlines()
    definitions = [node for node in ast.parse("\n".join(lines)).body
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert definitions
    for node in definitions:
        found = re.search(rf"\{{ #{node.name} .*\}}\n\n```python linenums=\"(\d+)\"\n(.*)\n", page)
        assert found, f"no anchored heading for {node.name}"
        numbered, first_code_line = int(found.group(1)), found.group(2)
        starts_at = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
        # The block may open with the comment lines right above the definition, nothing else.
        assert lines[numbered - 1] == first_code_line
        assert all(line.lstrip().startswith("#") for line in lines[numbered - 1 : starts_at - 1])


def test_fence_outgrows_backticks_inside():
    assert fenced_python("x = 1", 7) == '```python linenums="7"\nx = 1\n```\n'
    assert fenced_python('s = "````"', 1).startswith('`````python')


def test_function_names_split_into_module_and_definition():
    assert split_function("diffusion_lab.experiments.partb.guidance_sweep") == (
        "diffusion_lab.experiments.partb", "guidance_sweep")
    assert split_function("diffusion_lab.runcache.runs.RunRecord.load") == ("diffusion_lab.runcache.runs", "RunRecord.load")
    with pytest.raises(ValueError):
        split_function("no_such_module_anywhere.function")
    assert display_name("diffusion_lab.experiments.partb.guidance_sweep") == "experiments.partb.guidance_sweep"
    assert modules_of(["diffusion_lab.experiments.partb.a", "diffusion_lab.experiments.partb.b",
                       "diffusion_lab.experiments.parta.c"]) == ["diffusion_lab.experiments.parta",
                                                                   "diffusion_lab.experiments.partb"]


@pytest.mark.parametrize("page, expected", [
    ("part-b/class-conditioned-ddpm.md", "../code/diffusion_lab.experiments.partb.md#guidance_sweep"),
    ("build.md", "code/diffusion_lab.experiments.partb.md#guidance_sweep"),
    ("index.md", "code/diffusion_lab.experiments.partb.md#guidance_sweep"),
    ("a/b/deep.md", "../../code/diffusion_lab.experiments.partb.md#guidance_sweep"),
    ("code/diffusion_lab.experiments.parta.md", "diffusion_lab.experiments.partb.md#guidance_sweep"),
])
def test_code_link_is_relative_to_the_page_that_shows_it(page, expected):
    assert code_link("diffusion_lab.experiments.partb.guidance_sweep", page) == expected
    assert code_page_path("diffusion_lab.experiments.partb") == "code/diffusion_lab.experiments.partb.md"


def test_a_method_links_to_its_class():
    assert code_link("diffusion_lab.runcache.runs.RunRecord.load", "part-a/x.md") == (
        "../code/diffusion_lab.runcache.runs.md#RunRecord")


def _run(backend, function="diffusion_lab.experiments.partb.guidance_sweep"):
    return RunRecord(
        name="partb/guidance-sweep", key="0" * 64, params={}, seed=0, dir=Path("."), hit=True, wall_s=0.0,
        compute_s=0.0, device="cpu", profile="tiny", backend=backend, function=function, versions={},
        commit="x", created="now",
    )


def test_provenance_names_the_code_with_a_link(ctx):
    assert computed_by_markdown(_run(None), "part-b/class-conditioned-ddpm.md") == (
        "[`experiments.partb.guidance_sweep`](../code/diffusion_lab.experiments.partb.md#guidance_sweep)")


def test_provenance_shows_the_runs_own_backend(ctx):
    label = "the MNIST UNet, described"
    assert run_backend_text(_run(None), ctx, label) == NO_BACKEND
    assert run_backend_text(_run(ctx.backend), ctx, label) == label
    assert run_backend_text(_run("deepfloyd"), ctx, label) == "`deepfloyd`"
