"""Source pages and the provenance rows that link to them: anchors, line numbers, relative links."""

import ast
import posixpath
import re
import sys
import textwrap
from pathlib import Path

import markdown
import pytest

from diffusion_lab.report.code_graph import (
    ALGORITHMS,
    EXPERIMENTS,
    FOUNDATIONS,
    MODELS,
    calls_into,
    code_pages,
    module_file,
)
from diffusion_lab.report.page import NO_BACKEND, computed_by_markdown, run_backend_text
from diffusion_lab.report.source_pages import (
    code_link,
    code_page_path,
    display_name,
    fenced_python,
    modules_of,
    source_page_markdown,
    split_function,
    split_source,
)
from diffusion_lab.runcache.code_fingerprint import PACKAGE_ROOT, read_sources
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
    assert computed_by_markdown(_run(None), "part-b/class-conditioned-ddpm.md").endswith(
        "([source](../code/diffusion_lab.experiments.partb.md#guidance_sweep))")


def test_provenance_shows_the_runs_own_backend(ctx):
    label = "the MNIST UNet, described"
    assert run_backend_text(_run(None), ctx, label) == NO_BACKEND
    assert run_backend_text(_run(ctx.backend), ctx, label) == label
    assert run_backend_text(_run("deepfloyd"), ctx, label) == "`deepfloyd`"


# --- pages for the code the experiments reach, and the links between them ---------------------

EXPERIMENT_MODULES = sorted(f"diffusion_lab.experiments.{path.stem}"
                            for path in (PACKAGE_ROOT / "experiments").glob("*.py") if path.stem != "__init__")

SAMPLE_PACKAGE = {
    "__init__.py": '"""A sample package."""\n',
    "core.py": textwrap.dedent("""\
        def helper():
            return 1


        class Thing:
            @classmethod
            def make(cls):
                return cls()
    """),
    "algo.py": textwrap.dedent("""\
        import samplegraph.core as core_alias
        from samplegraph.core import helper
        from samplegraph.models import net


        def step():
            return helper()


        def build():
            return net.forward(core_alias.Thing.make())
    """),
    "extra.py": "def lazy_target():\n    return 2\n",
    "unused.py": "def nothing():\n    return None\n",
    "models/__init__.py": "",
    "models/net.py": "def forward(x):\n    return x\n",
    "report/__init__.py": "def render():\n    return ''\n",
    "experiments/__init__.py": "",
    "experiments/run.py": textwrap.dedent("""\
        from samplegraph import algo
        from samplegraph.algo import step
        from samplegraph.core import helper
        from samplegraph.report import render


        def local():
            return 0


        def uses_all():
            step()
            algo.build()
            local()
            render()
            return helper()


        def lazy():
            from samplegraph.extra import lazy_target
            return lazy_target()


        def shadowed(step):
            return step()


        def not_a_call():
            return helper
    """),
}


@pytest.fixture
def sample_package(tmp_path, monkeypatch):
    """SAMPLE_PACKAGE importable as `samplegraph`, with its import graph: (CodePages, sources)."""
    root = tmp_path / "samplegraph"
    for relative, text in SAMPLE_PACKAGE.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield code_pages(["samplegraph.experiments.run"], read_sources(root))
    for name in [name for name in sys.modules if name.split(".")[0] == "samplegraph"]:
        del sys.modules[name]


def test_the_experiments_reach_the_algorithms_and_never_the_rendering_or_the_cache():
    reached = code_pages(["diffusion_lab.experiments.parta"]).modules
    assert {"diffusion_lab.sampling", "diffusion_lab.editing", "diffusion_lab.schedule", "diffusion_lab.seeding",
            "diffusion_lab.backends.if_schedule"} <= set(reached)  # if_schedule: a lazy import only
    everything = code_pages(EXPERIMENT_MODULES).modules
    assert "diffusion_lab.mnist.training" in everything
    assert not [module for module in everything
                if module.split(".")[1:2] in (["report"], ["runcache"], ["cli"], ["__main__"])]


def test_the_nav_goes_from_experiments_to_algorithms_to_models_to_foundations():
    order = code_pages(EXPERIMENT_MODULES).modules
    position = order.index
    assert position("diffusion_lab.experiments.partb") < position("diffusion_lab.sampling")
    assert position("diffusion_lab.sampling") < position("diffusion_lab.mnist.training")
    assert position("diffusion_lab.mnist.training") < position("diffusion_lab.seeding")
    assert order[-1].split(".")[1] not in ("experiments", "backends", "mnist")


def test_sample_package_pages_and_their_order(sample_package):
    assert sample_package.modules == (
        "samplegraph.experiments", "samplegraph.experiments.run",  # EXPERIMENTS
        "samplegraph.algo",  # ALGORITHMS: a top-level module built on others
        "samplegraph.models", "samplegraph.models.net",  # MODELS: a subpackage
        "samplegraph", "samplegraph.core", "samplegraph.extra",  # FOUNDATIONS: import nothing of it
    )
    assert EXPERIMENTS < ALGORITHMS < MODELS < FOUNDATIONS


def test_uses_and_used_by_name_direct_imports_only(sample_package):
    uses, used_by = sample_package.uses, sample_package.used_by
    # Not the packages on the way (samplegraph, samplegraph.experiments), nor report.
    assert uses["samplegraph.experiments.run"] == ("samplegraph.algo", "samplegraph.core", "samplegraph.extra")
    assert uses["samplegraph.algo"] == ("samplegraph.core", "samplegraph.models.net")
    assert uses["samplegraph.core"] == ()
    assert used_by["samplegraph.core"] == ("samplegraph.algo", "samplegraph.experiments.run")
    assert used_by["samplegraph.models.net"] == ("samplegraph.algo",)
    assert used_by["samplegraph.experiments.run"] == ()


def test_uses_and_used_by_lines_link_the_pages(sample_package):
    page = source_page_markdown("samplegraph.algo", pages=sample_package)
    assert ("Uses: [`samplegraph.core`](samplegraph.core.md), "
            "[`samplegraph.models.net`](samplegraph.models.net.md).\n") in page
    assert "Used by: [`samplegraph.experiments.run`](samplegraph.experiments.run.md).\n" in page
    assert "Uses: no other module of the package.\n" in source_page_markdown("samplegraph.core", pages=sample_package)


def test_calls_into_follows_imported_names_and_nothing_else(sample_package):
    assert calls_into("samplegraph.experiments.run", sample_package) == {
        # Not `local` (this module's own), nor `render` (report has no page).
        "uses_all": ("samplegraph.algo.step", "samplegraph.algo.build", "samplegraph.core.helper"),
        "lazy": ("samplegraph.extra.lazy_target",),
        # `shadowed` calls its parameter; `not_a_call` only names `helper`.
    }
    # A method call links to its class; a module imported under another name is followed.
    assert calls_into("samplegraph.algo", sample_package) == {
        "step": ("samplegraph.core.helper",),
        "build": ("samplegraph.models.net.forward", "samplegraph.core.Thing"),
    }


def test_calls_into_comes_right_after_the_definitions_code(sample_package):
    page = source_page_markdown("samplegraph.experiments.run", pages=sample_package)
    lazy = page[page.index("{ #lazy "):page.index("## `def shadowed`")]
    assert lazy.rstrip().endswith(
        "```\n\nCalls into: [`samplegraph.extra.lazy_target`](samplegraph.extra.md#lazy_target).")
    assert page.count("Calls into:") == 2


def test_an_experiment_calls_into_the_algorithm_it_runs():
    pages = code_pages(EXPERIMENT_MODULES)
    parta = calls_into("diffusion_lab.experiments.parta", pages)
    assert "diffusion_lab.sampling.iterative_denoise" in parta["iterative"]
    # `editing.sdedit_ladder(` after `from diffusion_lab import editing`:
    assert "diffusion_lab.editing.sdedit_ladder" in parta["_sdedit_run"]
    assert "diffusion_lab.backends.if_schedule.if_alphas_cumprod" in parta["if_schedule_photo"]  # a lazy import
    illusions = calls_into("diffusion_lab.experiments.parta_illusions", pages)
    assert any("diffusion_lab.illusions.visual_anagram" in targets for targets in illusions.values())
    page = source_page_markdown("diffusion_lab.experiments.parta", pages=pages)
    iterative = page[page.index("{ #iterative "):]
    iterative = iterative[:iterative.index("\n## ")]
    calls_line = iterative.split("Calls into:")[1]
    assert "[`sampling.iterative_denoise`](diffusion_lab.sampling.md#iterative_denoise)" in calls_line
    html = _render(page)
    assert '<a href="diffusion_lab.sampling.md#iterative_denoise"><code>sampling.iterative_denoise</code></a>' in html


def test_every_link_between_code_pages_reaches_a_page_and_an_anchor():
    pages = code_pages(EXPERIMENT_MODULES)
    markdown_of = {code_page_path(module): source_page_markdown(module, pages=pages) for module in pages.modules}
    anchors_of = {path: set(re.findall(r"\{ #(\w+) \.source-definition \}", page))
                  for path, page in markdown_of.items()}
    checked = 0
    for path, page in markdown_of.items():
        link_lines = [line for line in page.splitlines() if line.startswith(("Uses:", "Used by:", "Calls into:"))]
        for href in re.findall(r"\]\(([^)\s]+)\)", "\n".join(link_lines)):
            target, _, anchor = href.partition("#")
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            assert target in markdown_of, f"{path}: {href} leads to no page"
            assert not anchor or anchor in anchors_of[target], f"{path}: {href} has no such anchor"
            checked += bool(anchor)
    assert checked > 50  # the Calls into links, not only the module links
