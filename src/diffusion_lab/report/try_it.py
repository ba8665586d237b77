"""The Try-it page's parts: the exported model and the onnxruntime-web files copied into the site,
the widget's HTML, what the page loads, and what to do where the runtime is missing.

The widget's scripts are static files in docs/try-it/ (diffusion_loop.mjs, worker.mjs, page.mjs,
try-it.css); the build adds `model.onnx`, `try-it.json` and the runtime (`ort/`) beside them.
The runtime comes from node_modules/, installed by `make site` with `npm ci` exactly as
package-lock.json pins it; without it the page builds with instructions instead of the widget.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path

from diffusion_lab.experiments.parta_inputs import REPO_ROOT
from diffusion_lab.experiments.parta_onnx import (
    MODEL_FILE,
    RUNTIME_PACKAGE,
    SETTINGS_FILE,
    pinned_npm_version,
)
from diffusion_lab.mnist.precision import resolve_precision
from diffusion_lab.report.page import write_file
from diffusion_lab.report.source_pages import page_url
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord

PAGE = "part-a/try-it.md"
ASSETS = "try-it"  # the site folder of the widget: docs/try-it plus what the build writes there
STATIC_DIR = REPO_ROOT / "docs" / ASSETS
SCRIPTS = ("page.mjs", "worker.mjs", "diffusion_loop.mjs", "try-it.css")
# onnxruntime-web's WASM build: its ES module, the Emscripten glue it imports and the SIMD binary
# (the threaded build also runs on one thread, which needs no cross-origin isolation).
RUNTIME_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
EQUALITY_TEST = "tests/test_try_it.py"


@dataclass(frozen=True)
class Runtime:
    """onnxruntime-web as this checkout has it: the pinned version, the installed one, its files."""

    pinned: str | None
    installed: str | None
    folder: Path

    @property
    def problem(self) -> str | None:
        """Why the demo cannot be built here, or None."""
        if self.pinned is None:
            return f"package-lock.json pins no {RUNTIME_PACKAGE}"
        if self.installed is None:
            return f"{RUNTIME_PACKAGE} is not installed (no node_modules/{RUNTIME_PACKAGE})"
        if self.installed != self.pinned:
            return (f"node_modules has {RUNTIME_PACKAGE} {self.installed} but package-lock.json pins "
                    f"{self.pinned}")
        missing = [name for name in RUNTIME_FILES if not (self.folder / name).is_file()]
        if missing:
            return f"node_modules/{RUNTIME_PACKAGE}/dist lacks {', '.join(missing)}"
        return None


def find_runtime(root: Path = REPO_ROOT) -> Runtime:
    package = root / "node_modules" / RUNTIME_PACKAGE
    try:
        installed = json.loads((package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        installed = None
    return Runtime(pinned_npm_version(lock=root / "package-lock.json"), installed, package / "dist")


@dataclass(frozen=True)
class LoadSize:
    """Bytes a reader's browser fetches to run the demo."""

    model: int
    runtime: int
    scripts: int
    settings: int

    @property
    def total(self) -> int:
        return self.model + self.runtime + self.scripts + self.settings


def save_assets(run: RunRecord, runtime: Runtime) -> LoadSize:
    """Write the export run's model and settings, and the runtime when it is usable, into the site's
    try-it/ folder; returns what the page loads (the runtime counts 0 where it is missing)."""
    model = run.path(MODEL_FILE).read_bytes()
    settings = run.path(SETTINGS_FILE).read_bytes()
    write_file(f"{ASSETS}/{MODEL_FILE}", model)
    write_file(f"{ASSETS}/{SETTINGS_FILE}", settings)
    runtime_bytes = 0
    if runtime.problem is None:
        for name in RUNTIME_FILES:
            data = (runtime.folder / name).read_bytes()
            write_file(f"{ASSETS}/ort/{name}", data)
            runtime_bytes += len(data)
    scripts = sum((STATIC_DIR / name).stat().st_size for name in SCRIPTS)
    return LoadSize(model=len(model), runtime=runtime_bytes, scripts=scripts, settings=len(settings))


def home_section(from_page: str) -> str:
    """The home page's pointer to the Try-it page (Markdown, linked from the page at `from_page`)."""
    link = posixpath.relpath(PAGE, posixpath.dirname(from_page) or ".")
    return (f"\n## Try it in your browser\n\n[Draw a digit]({link}) and run SDEdit, inpainting, guided sampling "
            "and the 6/9 anagram on it in your browser, with this build's class-conditioned MNIST DDPM.\n")


def megabytes(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 1e5 else f"{count / 1e3:.1f} kB"


def load_size_rows(size: LoadSize, runtime: Runtime) -> list[list[str]]:
    return [
        ["the UNet (`model.onnx`, float32)", megabytes(size.model)],
        [f"{RUNTIME_PACKAGE} {runtime.installed} (WASM build: {', '.join(f'`{n}`' for n in RUNTIME_FILES)})"
         if runtime.problem is None else f"{RUNTIME_PACKAGE}: missing from this build", megabytes(size.runtime)],
        ["the loop, the worker and the page (" + ", ".join(f"`{name}`" for name in SCRIPTS) + ")",
         megabytes(size.scripts)],
        ["the schedule, timesteps and the site's inputs (`try-it.json`)", megabytes(size.settings)],
        ["**total**", f"**{megabytes(size.total)}**"],
    ]


def network_precision(ctx: BuildContext) -> str:
    """How the site's own samplers evaluate the MNIST UNets on ctx's device (their "auto" precision)."""
    precision = resolve_precision("auto", ctx.device)
    return f"{'bf16 autocast' if precision == 'bf16' else 'float32'} on `{ctx.device}`"


def equality_test_source(root: Path = REPO_ROOT) -> str:
    """The equality test's source as a collapsed block (Markdown), or a line saying it is missing."""
    path = root / EQUALITY_TEST
    if not path.is_file():
        return f"(`{EQUALITY_TEST}` is not in this checkout.)"
    code = "\n".join("    " + line if line else "" for line in path.read_text().splitlines())
    return f'??? example "{EQUALITY_TEST}"\n\n    ```python\n{code}\n    ```\n'


def demo_markdown(runtime: Runtime, page_path: str) -> str:
    """The widget where the runtime is there, else the instructions that enable it."""
    return widget_html(page_path) if runtime.problem is None else enable_instructions(runtime)


def load_size_caption(runtime: Runtime) -> str:
    missing = "" if runtime.problem is None else f" (the runtime is missing from this build: {runtime.problem})"
    return f"What a reader's browser fetches to run the demo{missing}."


def enable_instructions(runtime: Runtime) -> str:
    """What the page says instead of the widget where the runtime is missing."""
    return f"""
!!! warning "The demo is not part of this build"
    This site was built without {RUNTIME_PACKAGE}: {runtime.problem}. To enable the demo, install
    Node.js and npm (e.g. `apt-get install nodejs npm`) and run `make site` again: it runs `npm ci`,
    which installs the version package-lock.json pins, and copies its files into the site.
"""


def _option(value, label: str, selected: bool = False) -> str:
    return f'<option value="{value}"{" selected" if selected else ""}>{label}</option>'


def _digit_options(default: int | None, unconditional: bool) -> str:
    options = [_option(-1, "unconditional (no digit)", default is None)] if unconditional else []
    options += [_option(digit, f"a handwritten {digit}", digit == default) for digit in range(10)]
    return "".join(options)


def widget_html(page_path: str) -> str:
    """The widget, its scripts addressed relative to the page at docs-relative `page_path` (raw HTML,
    which mkdocs does not rewrite). One block without blank lines, so Markdown leaves it alone."""
    assets = posixpath.relpath(ASSETS, page_url(page_path)) + "/"
    lines = [
        f'<link rel="stylesheet" href="{assets}try-it.css">',
        f'<div id="try-it" class="try-it" data-assets="{assets}" data-state="loading">',
        '<div class="try-it-modes">',
        '<button type="button" data-mode="sample" disabled>Sample a digit</button>',
        '<button type="button" data-mode="sdedit" disabled>SDEdit the drawing</button>',
        '<button type="button" data-mode="inpaint" disabled>Inpaint under the mask</button>',
        '<button type="button" data-mode="anagram" disabled>Anagram (rotated 180°)</button>',
        "</div>",
        '<div class="try-it-panels">',
        '<div class="try-it-panel">',
        '<canvas data-role="draw" width="280" height="280" aria-label="drawing canvas"></canvas>',
        '<div class="try-it-tools">',
        '<button type="button" data-tool="pen" class="active">Pen</button>',
        '<button type="button" data-tool="eraser">Eraser</button>',
        '<button type="button" data-tool="mask">Mask brush</button>',
        '<button type="button" data-role="clear-drawing">Clear drawing</button>',
        '<button type="button" data-role="clear-mask">Clear mask</button>',
        "</div>",
        "</div>",
        '<div class="try-it-panel">',
        '<div class="try-it-results">',
        '<canvas data-role="result" width="280" height="280" aria-label="result"></canvas>',
        '<canvas data-role="view" class="try-it-view" width="280" height="280" '
        'aria-label="the result rotated by 180 degrees" hidden></canvas>',
        "</div>",
        '<label>Frame <input type="range" data-role="frame" min="0" max="0" value="0"> '
        '<span data-role="frame-label"></span></label>',
        "</div>",
        "</div>",
        '<p class="try-it-message" data-role="message" role="status">Loading the model...</p>',
        '<div class="try-it-controls">',
        '<label>Load one of the site\'s inputs <select data-role="inputs">'
        + _option("", "choose...") + "</select></label>",
        '<label>Prompt (sample, SDEdit, inpainting) <select data-role="prompt">'
        + _digit_options(None, unconditional=True) + "</select></label>",
        '<label>Anagram: as it is <select data-role="anagram-first">' + _digit_options(6, False)
        + '</select> rotated 180° <select data-role="anagram-second">' + _digit_options(9, False)
        + "</select></label>",
        '<label>SDEdit i_start <input type="range" data-role="i-start" min="0" step="1"> '
        '<span data-role="i-start-label"></span></label>',
        '<label>Guidance g <input type="range" data-role="guidance-slider" step="0.5"> '
        '<input type="text" inputmode="decimal" data-role="guidance" size="5"></label>',
        '<label>Seed <input type="text" inputmode="numeric" data-role="seed" value="0" size="11"> '
        '<button type="button" data-role="new-seed">New seed</button></label>',
        "</div>",
        "</div>",
        # Browsers run neither module scripts nor workers from file:// pages: say so there.
        "<script>if (location.protocol === 'file:') document.querySelector('#try-it [data-role=\"message\"]')"
        ".textContent = 'The demo needs this page served over http: run make serve (or python3 -m http.server "
        "-d site) and open it from there; browsers do not run its scripts from a file:// page.';</script>",
        f'<script type="module" src="{assets}page.mjs"></script>',
    ]
    return "\n".join(lines) + "\n"
