"""The layers import one way: gen/ and the CLI -> report/ -> experiments/ -> runcache/ -> profiles
-> algorithms -> models -> foundations, and no modules import each other in a circle, inside a layer
or across. Every import counts, lazy ones inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "diffusion_lab"

# Higher numbers sit higher; a module may import its own layer and the ones below it.
LAYERS = {
    "entry": 8,  # gen/ page scripts, the CLI
    "report": 7,
    "experiments": 6,
    "runcache": 5,
    "profiles": 4,
    "algorithms": 3,
    "models": 2,
    "foundations": 1,
}
ALGORITHMS = {"schedule", "sampling", "matched_start", "flow_sampling", "editing", "illusions", "blur", "stock_sampling"}
FOUNDATIONS = {"hashing", "seeding", "forward_process", "metrics"}


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside diffusion_lab (or "gen.<script>")."""
    parts = module.split(".")
    if parts[0] == "gen":
        return "entry"
    top = parts[1] if len(parts) > 1 else "__init__"
    if top in ("cli", "__main__"):
        return "entry"
    if top in ("report", "experiments", "runcache", "profiles"):
        return top
    if top in ALGORITHMS:
        return "algorithms"
    if top in ("backends", "mnist"):
        return "models"
    if top in FOUNDATIONS or top == "__init__":
        return "foundations"
    raise AssertionError(f"{module} belongs to no layer: add it to tests/test_layers.py")


def _module_name(path: Path) -> str:
    if path.is_relative_to(REPO / "gen"):
        return f"gen.{path.stem}"
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of a diffusion_lab module in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from diffusion_lab import sampling` imports the module diffusion_lab.sampling.
            if node.module == "diffusion_lab":
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: use absolute imports, so this test sees them")
    return [(line, name) for line, name in found if name.split(".")[0] == "diffusion_lab"]


SOURCES = sorted(PACKAGE.rglob("*.py")) + sorted((REPO / "gen").glob("*.py"))


def upward_imports() -> list[str]:
    arrows = []
    for path in SOURCES:
        importer = _module_name(path)
        for line, imported in package_imports(path):
            if imported == "diffusion_lab":  # the package's own __init__: version only
                continue
            if LAYERS[layer_of(imported)] > LAYERS[layer_of(importer)]:
                arrows.append(f"{path.relative_to(REPO)}:{line}: {layer_of(importer)} imports "
                              f"{layer_of(imported)} ({imported})")
    return arrows


def test_no_module_imports_a_higher_layer():
    assert upward_imports() == []


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (at any depth, lazily or not), for every source."""
    modules = {_module_name(path) for path in SOURCES}
    graph = {}
    for path in SOURCES:
        importer = _module_name(path)
        graph[importer] = {name for _, name in package_imports(path) if name in modules and name != importer}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm): each is a circle of
    imports, whatever the layers."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_circle_of_imports_inside_a_layer_or_across():
    assert import_circles(import_graph()) == []


def test_the_circle_check_finds_a_planted_circle():
    """The report circle this project once had (page -> gpu_measurements -> flow_figures ->
    partb_figures -> page), planted into today's graph, is found; one import less, it is gone."""
    graph = import_graph()
    report = "diffusion_lab.report."
    planted = {**graph, report + "page": graph[report + "page"] | {report + "gpu_measurements"}}
    assert report + "flow_figures" in graph[report + "gpu_measurements"]
    assert report + "partb_figures" in graph[report + "flow_figures"]
    assert report + "page" in graph[report + "partb_figures"]
    assert import_circles(planted) == [sorted(report + name for name in
                                              ("page", "gpu_measurements", "flow_figures", "partb_figures"))]
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_mnist_imports_neither_backends_nor_sampling():
    for path in sorted((PACKAGE / "mnist").glob("*.py")):
        for line, imported in package_imports(path):
            assert not imported.startswith(("diffusion_lab.backends", "diffusion_lab.sampling")), (
                f"{path.name}:{line} imports {imported}")


@pytest.mark.parametrize("importer, imported, upward", [
    ("diffusion_lab.mnist.ddpm", "diffusion_lab.sampling", True),
    ("diffusion_lab.experiments.partb", "diffusion_lab.report.page", True),
    ("diffusion_lab.runcache.runs", "diffusion_lab.experiments.partb", True),
    ("gen.index", "diffusion_lab.report.page", False),
    ("diffusion_lab.sampling", "diffusion_lab.backends.base", False),
])
def test_the_layer_order_itself(importer, imported, upward):
    """The check would catch the arrows this project once had, and allows the downward ones."""
    assert (LAYERS[layer_of(imported)] > LAYERS[layer_of(importer)]) is upward
