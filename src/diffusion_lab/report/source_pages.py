"""Source pages: the code behind the figures, one page per module, rendered while the site is built.

A run's provenance names the experiment function that computed it ("diffusion_lab.experiments.
partb.guidance_sweep"); `code_link` turns that name into a link, relative to the page holding the
figure, to the function's heading on its module's source page, which `source_page_markdown` writes:
the module's docstring as prose, then every top-level definition under a heading whose id is its
name, its code numbered with the file's own line numbers.

Pages go further than the experiments: `code_graph.code_pages` gives one to every computation module the run
modules reach through their imports (the graph the run cache fingerprints), and each page says
which of them its module uses and is used by, and after each definition which definitions of other
pages its code calls ("Calls into"), so a reader goes from a figure to the experiment function in
one click and to the algorithm it runs in a second.
"""

from __future__ import annotations

import ast
import importlib.util
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from diffusion_lab.report.code_graph import DEFINITION_NODES, CodePages, calls_into, module_file

PACKAGE_PREFIX = "diffusion_lab."
CODE_DIR = "code"


@dataclass(frozen=True)
class SourceBlock:
    """Consecutive lines of a module: one top-level definition (`name` set) or module-level code."""

    name: str | None
    kind: str  # "def", "async def", "class" or "module code"
    first_line: int  # 1-based, as an editor numbers them
    code: str


@dataclass(frozen=True)
class ModuleSource:
    """A module's file split for reading: its docstring, then its code in order, nothing left out."""

    name: str
    path: Path
    line_count: int
    docstring: str
    blocks: tuple[SourceBlock, ...]


def split_function(function: str) -> tuple[str, str]:
    """("diffusion_lab.experiments.partb", "guidance_sweep") from "diffusion_lab.experiments.partb.
    guidance_sweep": the longest dotted prefix that is a module, and the rest (a method's
    "Class.method" stays whole)."""
    parts = function.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if _is_module(module):
            return module, ".".join(parts[cut:])
    raise ValueError(f"{function!r} names no function of an importable module")


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a prefix whose parent is a module, not a package
        return False


def display_name(function: str) -> str:
    """The name a reader sees: "experiments.partb.guidance_sweep", without the package's own name."""
    return function.removeprefix(PACKAGE_PREFIX)


def code_page_path(module: str) -> str:
    """Where a module's source page lies in the docs folder: code/<module>.md."""
    return f"{CODE_DIR}/{module}.md"


def page_url(path: str) -> str:
    """The URL path of the page at docs-relative `path`, as use_directory_urls makes it: "part-a/editing"
    (an index.md: its folder, "." for the home page). Links written as HTML, which mkdocs does not
    rewrite, are made from these."""
    stem = posixpath.splitext(path)[0]
    return (posixpath.dirname(stem) or ".") if posixpath.basename(stem) == "index" else stem


def code_link(function: str, from_page: str) -> str:
    """The link from the page at `from_page` (relative to docs/) to `function`'s heading on its
    module's source page, e.g. "../code/diffusion_lab.experiments.partb.md#guidance_sweep"."""
    module, qualname = split_function(function)
    target = code_page_path(module)
    relative = posixpath.relpath(target, posixpath.dirname(from_page) or ".")
    # Only top-level definitions have a heading: a method links to its class.
    anchor = qualname.split(".")[0]
    return f"{relative}#{anchor}" if anchor.isidentifier() else relative


def modules_of(functions: Iterable[str]) -> list[str]:
    """The modules that hold `functions`, each once, sorted."""
    return sorted({split_function(function)[0] for function in functions})


def read_module(module: str) -> ModuleSource:
    """`module`'s source, split into its docstring and blocks of code."""
    path = module_file(module)
    text = path.read_text(encoding="utf-8")
    return ModuleSource(module, path, len(text.splitlines()), *split_source(text))


def split_source(text: str) -> tuple[str, tuple[SourceBlock, ...]]:
    """(docstring, blocks): each top-level definition with its decorators and the comment lines
    right above it, and the module-level code between definitions; blank lines at a block's edges
    are dropped, every other line of the file except the docstring is in exactly one block."""
    tree = ast.parse(text)
    lines = text.splitlines()
    docstring = ast.get_docstring(tree) or ""
    body = tree.body[1:] if docstring else tree.body
    blocks: list[SourceBlock] = []
    shown_from = 1
    if docstring:
        # The docstring is shown as prose; a shebang or licence header above it is still code.
        blocks += _module_code(lines, 1, tree.body[0].lineno - 1)
        shown_from = tree.body[0].end_lineno + 1
    for node in body:
        if not isinstance(node, DEFINITION_NODES):
            continue
        start = _with_comments_above(lines, min([node.lineno, *(d.lineno for d in node.decorator_list)]), shown_from)
        blocks += _module_code(lines, shown_from, start - 1)
        blocks += _block(lines, node.name, _kind(node), start, node.end_lineno)
        shown_from = node.end_lineno + 1
    blocks += _module_code(lines, shown_from, len(lines))
    return docstring, tuple(blocks)


def _kind(node: ast.AST) -> str:
    return {ast.FunctionDef: "def", ast.AsyncFunctionDef: "async def", ast.ClassDef: "class"}[type(node)]


def _with_comments_above(lines: list[str], start: int, floor: int) -> int:
    """The first line of the comment lines directly above line `start` (none lower than `floor`)."""
    while start - 1 >= floor and lines[start - 2].lstrip().startswith("#"):
        start -= 1
    return start


def _module_code(lines: list[str], first: int, last: int) -> list[SourceBlock]:
    return _block(lines, None, "module code", first, last)


def _block(lines: list[str], name: str | None, kind: str, first: int, last: int) -> list[SourceBlock]:
    """Lines first..last (1-based, inclusive) as a block, trimmed of blank edge lines; none if blank."""
    while first <= last and not lines[first - 1].strip():
        first += 1
    while last >= first and not lines[last - 1].strip():
        last -= 1
    if first > last:
        return []
    return [SourceBlock(name, kind, first, "\n".join(lines[first - 1 : last]))]


def fenced_python(code: str, first_line: int) -> str:
    """A fenced python block numbered from `first_line`, its fence longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f'{fence}python linenums="{first_line}"\n{code}\n{fence}\n'


def source_page_markdown(module: str, intro: str = "", pages: CodePages | None = None) -> str:
    """The source page of `module`: `intro`, its docstring as prose, then every block of its code
    in order, each top-level definition under a heading with its name as id ({ #name }). With
    `pages` (which must hold `module`), also the modules it uses and is used by, and after each
    definition the definitions of other pages that it calls."""
    source = read_module(module)
    parts = [f"# {display_name(module)}\n"]
    if intro:
        parts.append(intro.strip() + "\n")
    parts.append(f"Module `{module}`, file `{_package_relative(source)}` ({source.line_count} lines).\n")
    calls: Mapping[str, tuple[str, ...]] = {}
    if pages is not None:
        parts.append(_module_list_line("Uses", pages.uses[module], module, "no other module of the package"))
        parts.append(_module_list_line("Used by", pages.used_by[module], module, "no other module shown here"))
        calls = calls_into(module, pages)
    if source.docstring:
        parts.append(source.docstring.strip() + "\n")
    parts += [_block_markdown(block, module, calls.get(block.name, ())) for block in source.blocks]
    return "\n".join(parts)


def _package_relative(source: ModuleSource) -> str:
    """The file's path from the top package's parent: "diffusion_lab/experiments/partb.py"."""
    depth = source.name.count(".") + (1 if source.path.name == "__init__.py" else 0)
    return "/".join(source.path.parts[-(depth + 1):])


def _block_markdown(block: SourceBlock, module: str, calls: tuple[str, ...] = ()) -> str:
    if block.name is None:
        heading = f"## Module-level code, line {block.first_line}\n"
    else:
        heading = f"## `{block.kind} {block.name}` {{ #{block.name} .source-definition }}\n"
    markdown = heading + "\n" + fenced_python(block.code, block.first_line)
    if calls:
        links = ", ".join(_code_page_link(target, module, anchor) for target, anchor in map(_split_last, calls))
        markdown += f"\nCalls into: {links}.\n"
    return markdown


def _module_list_line(label: str, modules: tuple[str, ...], from_module: str, when_none: str) -> str:
    """"Uses: [`sampling`](diffusion_lab.sampling.md), ...", or the label with `when_none`."""
    listed = ", ".join(_code_page_link(module, from_module) for module in modules) or when_none
    return f"{label}: {listed}.\n"


def _code_page_link(module: str, from_module: str, anchor: str | None = None) -> str:
    """A link from `from_module`'s code page to `module`'s (to the heading `anchor` when given),
    shown as the dotted name without the package's own: [`sampling.sample`](...#sample)."""
    target = posixpath.relpath(code_page_path(module), posixpath.dirname(code_page_path(from_module)))
    shown = display_name(f"{module}.{anchor}" if anchor else module)
    return f"[`{shown}`]({target}#{anchor})" if anchor else f"[`{shown}`]({target})"


def _split_last(dotted: str) -> tuple[str, str]:
    module, _, name = dotted.rpartition(".")
    return module, name


