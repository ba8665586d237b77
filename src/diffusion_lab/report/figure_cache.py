"""Rendered figures kept by content: a warm rebuild reads a figure's bytes instead of drawing it again.

`cached_figure` wraps a function that renders a picture from its arguments. The key is the sha256
of everything the bytes depend on: the function's name, its arguments (tensors and arrays by dtype,
shape and raw bytes; strings, numbers and containers by value), the source of the module that
renders it, and the versions of the libraries that draw and encode (matplotlib, Pillow, numpy).
Change any of these and the figure is drawn anew; nothing else is trusted.

Figures live in `<run cache>/figures/` (the folder `DIFFUSION_LAB_CACHE` names, which every build
sets); without that setting nothing is cached. Writes are atomic (temp file + rename), so
concurrent builds on one cache at worst draw the same figure twice.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

FOLDER = "figures"


class Unhashable(TypeError):
    """An argument the key cannot describe: the figure is drawn without the cache."""


def _feed(h, value) -> None:
    """Feed `value` into the hash `h`, tagged with its kind so that e.g. 1 and "1" differ."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        h.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        h.update(f"A{array.dtype.str}{array.shape}".encode())
        h.update(array.tobytes())
    elif value is None or isinstance(value, (bool, int, float, str)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}[".encode())
        for item in value:
            _feed(h, item)
        h.update(b"]")
    elif isinstance(value, Mapping):
        h.update(f"D{len(value)}{{".encode())
        for key in sorted(value, key=repr):
            _feed(h, key)
            _feed(h, value[key])
        h.update(b"}")
    else:
        raise Unhashable(f"cannot key a figure on a {type(value).__name__}")


@functools.lru_cache(maxsize=None)
def _renderer_identity(module_name: str) -> str:
    """The rendering module's source and the drawing libraries' versions, as one digest."""
    import matplotlib
    import PIL

    source = Path(sys.modules[module_name].__file__).read_bytes()
    versions = f"matplotlib {matplotlib.__version__}; Pillow {PIL.__version__}; numpy {np.__version__}"
    return hashlib.sha256(source + versions.encode()).hexdigest()


def figure_key(function: Callable, args: tuple, kwargs: dict) -> str:
    """The sha256 of what `function(*args, **kwargs)`'s bytes depend on; raises Unhashable."""
    h = hashlib.sha256()
    h.update(f"{function.__module__}.{function.__qualname__};{_renderer_identity(function.__module__)};".encode())
    _feed(h, list(args))
    _feed(h, dict(kwargs))
    return h.hexdigest()


def cache_folder() -> Path | None:
    """Where figures are kept: `figures/` in the build's run cache, or None outside a build."""
    root = os.environ.get("DIFFUSION_LAB_CACHE")
    return Path(root).expanduser() / FOLDER if root else None


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def cached_figure(function: Callable[..., bytes]) -> Callable[..., bytes]:
    """`function` with its bytes kept in `cache_folder()` under `figure_key`."""

    @functools.wraps(function)
    def render(*args, **kwargs) -> bytes:
        folder = cache_folder()
        if folder is None:
            return function(*args, **kwargs)
        try:
            key = figure_key(function, args, kwargs)
        except Unhashable:
            return function(*args, **kwargs)
        path = folder / key[:2] / key
        try:
            return path.read_bytes()
        except OSError:
            pass
        data = function(*args, **kwargs)
        try:
            _write_atomically(path, data)
        except OSError:
            pass  # a read-only cache still builds; it just draws every figure
        return data

    return render
