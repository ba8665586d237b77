"""Source pages: the code behind the figures, one page per module, rendered while the site is built.

A run's provenance names the experiment function that computed it ("diffusion_lab.experiments.
partb.guidance_sweep"); `code_link` turns that name into a link, relative to the page holding the
figure, to the function's heading on its module's source page, which `source_page_markdown` writes:
the module's docstring as prose, then every top-level definition under a heading whose id is its
name, its code numbered with the file's own line numbers.

Pages go further than the experiments: `code_pages` gives one to every computation module the run
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

from diffusion_lab.runcache.code_fingerprint import PackageSources, dependency_closure, read_sources

PACKAGE_PREFIX = "diffusion_lab."
CODE_DIR = "code"
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


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


def module_file(module: str) -> Path:
    """The installed file of `module` (a package's __init__.py for a package)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"no Python source file for module {module!r}")
    return Path(spec.origin)


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
        if not isinstance(node, _DEFINITIONS):
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


# --- which modules get a page, and how they are linked ----------------------------------------

# Nav order of the code pages: what a reader reaches first from a figure comes first.
EXPERIMENTS, ALGORITHMS, MODELS, FOUNDATIONS = range(4)


@dataclass(frozen=True)
class CodePages:
    """The modules that get a code page, in nav order, and the links between them."""

    modules: tuple[str, ...]
    uses: Mapping[str, tuple[str, ...]]  # the page modules each one imports directly
    used_by: Mapping[str, tuple[str, ...]]  # the page modules that import each one
    definitions: Mapping[str, frozenset[str]]  # the top-level definitions of each, the anchors of its page

    def has_definition(self, module: str, name: str) -> bool:
        """Whether `module` has a page with a heading for its top-level definition `name`."""
        return name in self.definitions.get(module, ())


def code_pages(run_modules: Iterable[str], sources: PackageSources | None = None) -> CodePages:
    """The pages for `run_modules` and every computation module they import, directly or not,
    lazily or not: the import graph of `sources` (the package's own by default), which leaves
    out rendering, the run cache and the CLI, as the run cache's fingerprints do."""
    sources = read_sources() if sources is None else sources
    run_modules = set(run_modules)
    modules = run_modules | dependency_closure(run_modules, sources)
    uses = {module: tuple(sorted(direct_imports(module, sources) & modules)) for module in modules}
    used_by = {module: tuple(sorted(user for user in modules if module in uses[user])) for module in modules}
    definitions = {module: top_level_definitions(module_file(module).read_text(encoding="utf-8"))
                   for module in modules}
    ordered = sorted(modules, key=lambda module: (nav_layer(module, uses, modules, run_modules), module))
    return CodePages(tuple(ordered), uses, used_by, definitions)


def direct_imports(module: str, sources: PackageSources) -> set[str]:
    """The computation modules that `module`'s own import statements bring in. The import graph
    also counts the packages around each import (their __init__ runs, which matters to a
    fingerprint); a reader wants the module imported, not every package on its way."""
    imported = sources.imports.get(module, set()) - {module}
    packages_around = {name.rsplit(".", depth)[0] for name in imported | {module}
                       for depth in range(1, name.count(".") + 1)}
    return imported - packages_around


def nav_layer(module: str, uses: Mapping[str, tuple[str, ...]], modules: Iterable[str],
              run_modules: Iterable[str] = ()) -> int:
    """Where `module`'s page goes in the nav: EXPERIMENTS (the run modules and the `experiments`
    package), MODELS (any other subpackage: the backends, Part B's MNIST code), ALGORITHMS (a
    top-level module built on other modules) or FOUNDATIONS (the package itself and the top-level
    modules that import none of it: seeding, hashing, the forward process, metrics)."""
    parts = module.split(".")
    if module in run_modules or parts[1:2] == ["experiments"]:
        return EXPERIMENTS
    if len(parts) == 1:
        return FOUNDATIONS
    if len(parts) > 2 or any(other.startswith(module + ".") for other in modules):
        return MODELS
    return ALGORITHMS if uses[module] else FOUNDATIONS


def top_level_definitions(text: str) -> frozenset[str]:
    """The names of a module's top-level functions and classes: the anchors of its page."""
    return frozenset(node.name for node in ast.parse(text).body if isinstance(node, _DEFINITIONS))


# --- "Calls into": the definitions of other pages that a definition calls ---------------------

# What a name imported into a module stands for: (module, None) for a module, (module, name)
# for one of its top-level names.
Binding = tuple[str, str | None]


def calls_into(module: str, pages: CodePages) -> dict[str, tuple[str, ...]]:
    """For each top-level definition of `module`, the top-level definitions of other modules with
    a page that its code calls through an imported name ("diffusion_lab.sampling.iterative_denoise"
    from `iterative_denoise(...)` after `from diffusion_lab.sampling import iterative_denoise`, or
    from `sampling.iterative_denoise(...)` after `from diffusion_lab import sampling`), in the
    order of their first call. A method links to its class; a name the definition binds itself,
    or the module rebinds, is not followed."""
    tree = ast.parse(module_file(module).read_text(encoding="utf-8"))
    module_level = _bindings(_imports(_outside_definitions(tree)), pages)
    for name in _rebound_at_module_level(tree):
        module_level.pop(name, None)
    found = {}
    for node in tree.body:
        if not isinstance(node, _DEFINITIONS):
            continue
        shadowed = _bound_inside(node)
        bindings = {name: binding for name, binding in module_level.items() if name not in shadowed}
        bindings.update(_bindings(_imports(ast.walk(node)), pages))  # lazy imports inside it
        targets = [target for target in _called(node, bindings, pages)
                   if target[0] != module and pages.has_definition(*target)]
        if targets:
            found[node.name] = tuple(dict.fromkeys(f"{target}.{name}" for target, name in targets))
    return found


def _outside_definitions(node: ast.AST) -> Iterable[ast.AST]:
    """The nodes below `node` that run at its own level, not inside a function, class or lambda."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (*_DEFINITIONS, ast.Lambda)):
            continue
        yield child
        yield from _outside_definitions(child)


def _imports(nodes: Iterable[ast.AST]) -> list[ast.Import | ast.ImportFrom]:
    return [node for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom))]


def _bindings(imports: Iterable[ast.Import | ast.ImportFrom], pages: CodePages) -> dict[str, Binding]:
    """The names these import statements bind, and what each stands for. Relative imports (the
    package has none) and star imports bind nothing here: they are never followed."""
    bindings: dict[str, Binding] = {}
    for node in imports:
        if isinstance(node, ast.Import):
            for alias in node.names:
                # `import a.b` binds `a`; `import a.b as c` binds c to a.b.
                bound = alias.name if alias.asname else alias.name.split(".")[0]
                bindings[alias.asname or bound] = (bound, None)
        elif node.module and not node.level:
            for alias in node.names:
                if alias.name == "*":
                    continue
                submodule = f"{node.module}.{alias.name}"
                is_module = submodule in pages.definitions
                bindings[alias.asname or alias.name] = (submodule, None) if is_module else (node.module, alias.name)
    return bindings


def _rebound_at_module_level(tree: ast.Module) -> set[str]:
    """Names the module itself assigns or defines: an import of the same name is not what they mean."""
    defined = {node.name for node in tree.body if isinstance(node, _DEFINITIONS)}
    return defined | {node.id for node in _outside_definitions(tree)
                      if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)}


def _bound_inside(definition: ast.AST) -> set[str]:
    """Every name a definition binds anywhere inside it other than by import: parameters,
    assignments, loop and with targets, nested definitions, exception and match names. One
    binding anywhere hides the import in the whole definition: a missed link, never a wrong one."""
    names = set()
    for node in ast.walk(definition):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, _DEFINITIONS) and node is not definition:
            names.add(node.name)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
    return names


def _called(definition: ast.AST, bindings: Mapping[str, Binding], pages: CodePages) -> list[tuple[str, str]]:
    """(module, top-level name) of each call in `definition` through an imported name, in source order."""
    calls = sorted((node for node in ast.walk(definition) if isinstance(node, ast.Call)),
                   key=lambda call: (call.lineno, call.col_offset))
    targets = []
    for call in calls:
        dotted = _dotted_name(call.func)
        if dotted and dotted[0] in bindings:
            target = _resolve(bindings[dotted[0]], dotted[1:], pages)
            if target:
                targets.append(target)
    return targets


def _dotted_name(node: ast.AST) -> list[str] | None:
    """["editing", "sdedit"] for `editing.sdedit`, ["sample"] for `sample`; None for anything else."""
    attributes = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    return [node.id, *reversed(attributes)] if isinstance(node, ast.Name) else None


def _resolve(binding: Binding, attributes: list[str], pages: CodePages) -> tuple[str, str] | None:
    """The (module, top-level name) that a bound name followed by `attributes` calls: for a
    module, down its submodules with pages to the first other attribute; for a name imported
    from a module, that name (a method's class)."""
    module, name = binding
    if name is not None:
        return module, name
    for attribute in attributes:
        if f"{module}.{attribute}" not in pages.definitions:
            return module, attribute
        module = f"{module}.{attribute}"
    return None
