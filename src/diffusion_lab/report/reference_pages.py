"""Reference pages: one page per module, rendered by mkdocstrings from the code and its docstrings.

A page is a heading and one `::: module` directive; mkdocstrings (mkdocs.yml) renders every
definition of the module under an anchor named by its dotted path ("diffusion_lab.sampling.sample"),
which is what a provenance block's "computed by" link points at (`reference_link`). Below each
entry, a link leads to the definition on the module's numbered source page ("Code behind the
figures", `source_pages`): every module with a function that computed a run has one.
"""

from __future__ import annotations

import json
import pkgutil
import posixpath
from importlib.util import find_spec
from typing import Iterable

from diffusion_lab.report.code_graph import CodePages
from diffusion_lab.report.source_pages import PACKAGE_PREFIX, code_page_path, display_name, page_url

REFERENCE_DIR = "reference"

PACKAGE = PACKAGE_PREFIX.rstrip(".")
# The subpackages whose every module gets a page, beside the package's own top-level modules (the
# algorithms and what they share): the runs of the site, the noise models, Part B's MNIST code.
REFERENCE_SUBPACKAGES = tuple(PACKAGE_PREFIX + name for name in ("experiments", "backends", "mnist"))
NOT_REFERENCED = {PACKAGE_PREFIX + "__main__"}


def package_modules(package: str) -> list[str]:
    """The modules of `package` (not its subpackages), found on disk without importing them."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package!r} is not a package")
    return sorted(f"{package}.{info.name}" for info in pkgutil.iter_modules(spec.submodule_search_locations)
                  if not info.ispkg)


def reference_modules(run_modules: Iterable[str] = ()) -> list[str]:
    """The modules with a reference page, in nav order: the experiments (with the module of any
    other function that computed a run), the top-level modules (schedule, sampling, editing,
    illusions, blur, metrics, ...), the backends, the MNIST code."""
    experiments, backends, mnist = (package_modules(package) for package in REFERENCE_SUBPACKAGES)
    top_level = [module for module in package_modules(PACKAGE) if module not in NOT_REFERENCED]
    listed = [*experiments, *top_level, *backends, *mnist]
    extra = sorted(set(run_modules) - set(listed))
    return [*experiments, *extra, *top_level, *backends, *mnist]


def reference_page_path(module: str) -> str:
    """Where a module's reference page lies in the docs folder: reference/<module>.md."""
    return f"{REFERENCE_DIR}/{module}.md"


def reference_link(function: str) -> str:
    """A Markdown link to `function`'s reference entry, resolved by mkdocs-autorefs from the
    dotted path mkdocstrings gives the entry as its id (a strict build fails on a missing one)."""
    return f"[`{display_name(function)}`][{function}]"


def reference_page_markdown(module: str, pages: CodePages | None = None) -> str:
    """The reference page of `module`: its name and a mkdocstrings directive. Private names are
    shown on the experiments' pages, where the functions that compute runs often are. With
    `pages`, each entry of a module that has a source page links to its definition there."""
    options: dict = {}
    if module.startswith(PACKAGE_PREFIX + "experiments."):
        options["filters"] = ["!^__"]
    if pages is not None and module in pages.modules:
        code_page = posixpath.relpath(page_url(code_page_path(module)), page_url(reference_page_path(module)))
        options["extra"] = {"code_page": code_page + "/", "code_anchors": sorted(pages.definitions[module])}
    # The options block is YAML; JSON is YAML, one line each keeps the directive readable.
    lines = [f"# {display_name(module)}\n", f"::: {module}"]
    if options:
        lines.append("    options:")
        lines += [f"      {name}: {json.dumps(value)}" for name, value in options.items()]
    return "\n".join(lines) + "\n"
