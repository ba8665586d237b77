"""Which modules get a code page, and the links between them: Uses, Used by and Calls into.

The pages cover the run modules and every computation module they reach through their imports,
the same graph the run cache fingerprints (`runcache.code_fingerprint`), so the site shows exactly
the code a cache key covers. "Calls into" resolves, with the module's syntax tree, which top-level
definitions of other pages a definition calls.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from diffusion_lab.runcache.code_fingerprint import PackageSources, dependency_closure, read_sources

DEFINITION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def module_file(module: str) -> Path:
    """The installed file of `module` (a package's __init__.py for a package)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"no Python source file for module {module!r}")
    return Path(spec.origin)


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
    return frozenset(node.name for node in ast.parse(text).body if isinstance(node, DEFINITION_NODES))


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
        if not isinstance(node, DEFINITION_NODES):
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
        if isinstance(child, (*DEFINITION_NODES, ast.Lambda)):
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
    defined = {node.name for node in tree.body if isinstance(node, DEFINITION_NODES)}
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
        elif isinstance(node, DEFINITION_NODES) and node is not definition:
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
