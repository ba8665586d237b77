"""Which code a run executes: a fingerprint of the package modules its compute function reaches.

A run's cache key includes `loaded_source_fingerprint(modules)`: the source of the modules its
compute function lives in (see `runs.compute_modules`) and of every package module they import,
directly or not, lazily or not. Code that never changes what a run computes (rendering, this run
cache, the CLI's parsing) and the profile table (data that reaches a run through its parameters)
are left out, so editing them recomputes nothing.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import diffusion_lab

PACKAGE_ROOT = Path(diffusion_lab.__file__).resolve().parent
# Rendering code, the run cache itself and the CLI's argument parsing never change what a run
# computes, so editing them must not invalidate hours of cached training. The profile table is
# data: a run takes what it uses of it through its parameters (a recipe's `to_dict()`), which are
# in its key, so a new sample count there retrains nothing.
_NOT_COMPUTATION = ("report", "runcache", "profiles.py", "cli", "__main__.py")


def computation_sources(root: Path = PACKAGE_ROOT) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] in _NOT_COMPUTATION or "__pycache__" in relative.parts:
            continue
        files.append(path)
    return files


@dataclass(frozen=True)
class PackageSources:
    """The computation modules by dotted name ("<root name>.mnist.ddpm"): their code, and the
    modules each one imports (with the packages around it, whose __init__ importing it runs)."""

    code: dict[str, bytes]
    imports: dict[str, set[str]]
    executable: dict[str, bytes] = field(default_factory=dict)  # what the key hashes: see `executable_code`


def read_sources(root: Path = PACKAGE_ROOT) -> PackageSources:
    """Read and parse the package's computation code once."""
    code = {}
    for path in computation_sources(root):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        code[name] = path.read_bytes()
    imports = {
        name: _imported(name, text, code) | {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
        for name, text in code.items()
    }
    return PackageSources(code, imports, {name: executable_code(text) for name, text in code.items()})


def executable_code(source: bytes) -> bytes:
    """The module's syntax tree without docstrings (comments never reach it): what its code does.
    Documenting a function, or commenting why, must not retrain the models that use it; no
    computation reads a docstring (the run cache's tests check one that would)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def _imported(module: str, source: bytes, known: dict[str, bytes]) -> set[str]:
    """The known modules that `module` imports anywhere in its text, function bodies included
    (lazy imports count), with the packages that contain them."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # A relative import resolves against the module's package, or the module itself when
            # it is a package's __init__: both count, which can only over-include.
            bases = [node.module or ""]
            if node.level:
                anchors = {module.rsplit(".", node.level)[0], module.rsplit(".", node.level - 1)[0]}
                bases = [f"{anchor}.{node.module}" if node.module else anchor for anchor in anchors]
            names += bases + [f"{base}.{alias.name}" for base in bases for alias in node.names]
    found = set()
    for name in names:
        parts = name.split(".")
        prefixes = (".".join(parts[:i]) for i in range(1, len(parts) + 1))
        found.update(prefix for prefix in prefixes if prefix in known)
    return found


def dependency_closure(modules: Iterable[str], sources: PackageSources) -> set[str]:
    """`modules` and every computation module they import, directly or not."""
    closure, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name in closure or name not in sources.code:
            continue
        closure.add(name)
        todo.extend(sources.imports[name] - closure)
    return closure


@lru_cache(maxsize=1)
def _loaded_sources() -> PackageSources:
    return read_sources(PACKAGE_ROOT)


@lru_cache(maxsize=None)
def loaded_source_fingerprint(modules: tuple[str, ...] | None = None) -> str:
    """The fingerprint of the code a run computes with, from the package's source as this process
    first read it: an edit made while a build runs must not change the keys of its later runs
    (the code they run is the loaded code)."""
    return source_fingerprint(PACKAGE_ROOT, modules, _loaded_sources())


def source_fingerprint(root: Path = PACKAGE_ROOT, modules: Iterable[str] | None = None,
                       sources: PackageSources | None = None) -> str:
    """sha256 over the computation code that `modules` depend on: the whole package's when None,
    or when one of them lies outside the package (a test's compute function, say). Editing
    Part A's code thus leaves Part B's trained models cached."""
    sources = read_sources(root) if sources is None else sources
    modules = None if modules is None else list(modules)
    inside = modules is not None and all(module.split(".")[0] == root.name for module in modules)
    names = dependency_closure(modules, sources) if inside else set(sources.code)
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(sources.executable.get(name) or executable_code(sources.code[name]))
        digest.update(b"\0")
    return digest.hexdigest()
