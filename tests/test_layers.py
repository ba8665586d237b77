"""The layers import one way: gen/ and the CLI -> report/ -> experiments/ -> runcache/ -> profiles
-> algorithms -> models -> foundations. Every import counts, lazy ones inside functions too."""

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
