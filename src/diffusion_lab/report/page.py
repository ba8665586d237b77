"""Pages of the site: Markdown written through mkdocs-gen-files, every figure with its provenance.

A page script builds a `Page`, adds prose, figures and tables, and calls `save()`. Saving
registers the page for the navigation, so the nav lists exactly the pages that were rendered.
"""

from __future__ import annotations

import html
import json
from urllib.parse import urlsplit
import posixpath
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import jinja2

from diffusion_lab.report.code_graph import code_pages
from diffusion_lab.report.reference_pages import (
    reference_link,
    reference_modules,
    reference_page_markdown,
    reference_page_path,
)
from diffusion_lab.report.source_pages import (
    code_link,
    code_page_path,
    display_name,
    modules_of,
    page_url,
    source_page_markdown,
)
from diffusion_lab.runcache.context import PRECISION_RULES, PRECISION_WORDS, BuildContext, network_precision
from diffusion_lab.runcache.provenance import LOCK_FILE, git_commit
from diffusion_lab.runcache.runs import RunRecord

import mkdocs_gen_files
from mkdocs.structure.files import InclusionLevel


@dataclass(frozen=True)
class NavEntry:
    section: str
    title: str
    path: str


# The checkout the site is built from: paths shown on the site are relative to it.
CHECKOUT = LOCK_FILE.parent

# Pages saved in this build, in order: the last page script turns them into the nav.
NAV: list[NavEntry] = []


@dataclass(frozen=True)
class RunUse:
    """A figure or table that shows a run: on the page at `path`, the `kind`'s `number`-th."""

    path: str
    title: str
    kind: str  # "figure" or "table", as pymdownx's caption blocks number them
    number: int

    def markdown(self, from_page: str) -> str:
        """A link from the page at `from_page` to this figure or table ("figure 3"), as HTML:
        mkdocs checks only headings' anchors, and the caption's id is not one."""
        relative = posixpath.relpath(page_url(self.path), page_url(from_page))
        return f'<a href="{relative}/#__{self.kind}-caption_{self.number}">{self.kind} {self.number}</a>'


# The figures and tables that showed each run of this build, by run key: the Build page lists them.
RUN_USES: dict[str, list[RunUse]] = {}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence], align: Sequence[str] | None = None) -> str:
    """A Markdown table, one line per row, ending in a newline; `align` is each column's "---" / "---:"."""
    align = align or ["---"] * len(headers)
    lines = ["| " + " | ".join(_cell(header) for header in headers) + " |", "|" + "|".join(align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]) + "\n"


def _cell(value) -> str:
    """A table cell's Markdown: a "|" inside it (|x|, a norm) escaped, so it does not end the cell."""
    return re.sub(r"(?<!\\)\|", r"\\|", str(value))


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("diffusion_lab.report", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
    )


def render_template(name: str, **values) -> str:
    return _templates().get_template(name).render(**values)


def write_file(path: str, data: bytes | str) -> None:
    """Write a file into the site being built (mkdocs-gen-files' virtual docs folder)."""
    mode = "wb" if isinstance(data, bytes) else "w"
    with mkdocs_gen_files.open(path, mode) as handle:
        handle.write(data)


def rebuild_command(ctx: BuildContext) -> str:
    return f"make site PROFILE={ctx.profile} BACKEND={ctx.backend} FORCE=1"


NO_BACKEND = "none (this run evaluates no noise model)"


def run_backend_text(run: RunRecord, ctx: BuildContext, backend_label: str) -> str:
    """The run's own backend: the page's descriptive label when it is the build's backend."""
    if run.backend is None:
        return NO_BACKEND
    if run.backend == ctx.backend:
        return backend_label
    return f"`{run.backend}`"


def computed_by_markdown(run: RunRecord, page_path: str) -> str:
    """Links, from the page at `page_path`, to the reference entry of the function that computed
    `run` (mkdocstrings' id, its dotted path), then to its numbered source."""
    return f"{reference_link(run.function)} ([source]({code_link(run.function, page_path)}))"


def provenance_block(runs: Sequence[RunRecord], ctx: BuildContext, backend_label: str, page_path: str) -> str:
    """A collapsed block naming seed, parameters, the code that computed each run, profile, backend,
    device, time, cache status, versions; `page_path` is where it is shown, for relative links."""
    hits = sum(run.hit for run in runs)
    status = "cache hit" if hits == len(runs) else ("computed now" if hits == 0 else f"{hits}/{len(runs)} cache hits")
    prepared = [
        dict(
            vars(run),
            origin_text=ORIGIN_WORDS[run.origin],
            params_json=json.dumps(run.params, indent=2, sort_keys=True),
            computed_by=computed_by_markdown(run, page_path),
            backend_text=run_backend_text(run, ctx, backend_label),
        )
        for run in runs
    ]
    return render_template(
        "provenance.md.j2",
        runs=prepared,
        status=status,
        total_s=sum(run.wall_s for run in runs),
        rebuild=rebuild_command(ctx),
    )


@dataclass
class Page:
    """One Markdown page at `path` (relative to docs/), shown in the nav under `section`."""

    path: str
    title: str
    ctx: BuildContext
    section: str = ""
    backend_label: str = ""
    _parts: list[str] = field(default_factory=list)
    _figures: int = 0
    _tables: int = 0
    figure_assets: list[str] = field(default_factory=list)  # each figure's file, relative to docs/

    def __post_init__(self) -> None:
        self._parts.append(f"# {self.title}\n")
        if not self.backend_label:
            self.backend_label = f"`{self.ctx.backend}`"

    def text(self, markdown: str) -> "Page":
        self._parts.append(markdown.strip() + "\n")
        return self

    def _record_uses(self, runs: Sequence[RunRecord], kind: str, number: int) -> None:
        use = RunUse(self.path, self.title, kind, number)
        for run in runs:
            uses = RUN_USES.setdefault(run.key, [])
            if use not in uses:
                uses.append(use)

    def _asset_path(self, filename: str) -> str:
        stem = posixpath.splitext(posixpath.basename(self.path))[0]
        return posixpath.join(posixpath.dirname(self.path), "img", stem, filename)

    def figure(
        self,
        data: bytes,
        caption: str,
        runs: RunRecord | Sequence[RunRecord],
        filename: str | None = None,
        alt: str | None = None,
        pixelated: bool = False,
    ) -> "Page":
        """An image (PNG or GIF bytes) with a numbered caption and the provenance of the runs behind it."""
        runs = [runs] if isinstance(runs, RunRecord) else list(runs)
        self._figures += 1
        self._record_uses(runs, "figure", self._figures)
        extension = "gif" if data[:6] in (b"GIF87a", b"GIF89a") else "png"
        filename = filename or f"figure-{self._figures}.{extension}"
        asset = self._asset_path(filename)
        self.figure_assets.append(asset)
        write_file(asset, data)
        relative = posixpath.relpath(asset, posixpath.dirname(self.path) or ".")
        classes = "{ .pixelated }" if pixelated else ""
        self._parts.append(
            f"![{alt or caption}]({relative}){classes}\n"
            f"/// figure-caption\n{caption}\n///\n\n"
            + provenance_block(runs, self.ctx, self.backend_label, self.path)
        )
        return self

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence],
        caption: str,
        runs: RunRecord | Sequence[RunRecord],
        align: Sequence[str] | None = None,
    ) -> "Page":
        """A Markdown table with a numbered caption and provenance, like a figure."""
        runs = [runs] if isinstance(runs, RunRecord) else list(runs)
        self._tables += 1
        self._record_uses(runs, "table", self._tables)
        self._parts.append(
            markdown_table(headers, rows, align) + "/// table-caption\n" + caption + "\n///\n\n"
            + provenance_block(runs, self.ctx, self.backend_label, self.path)
        )
        return self

    def markdown(self) -> str:
        return "\n".join(self._parts)

    def save(self) -> None:
        write_file(self.path, self.markdown())
        NAV.append(NavEntry(self.section, self.title, self.path))


def save_source_pages(runs: Sequence[RunRecord], section: str, intro: str) -> None:
    """One source page per module whose function computed one of `runs` (at code/<module>.md, the
    target of provenance links) and per computation module those reach through their imports,
    each opening with `intro`, listed under `section` in the nav: experiments, algorithms, models,
    then the shared foundations."""
    pages = code_pages(modules_of(run.function for run in runs))
    for module in pages.modules:
        path = code_page_path(module)
        write_file(path, source_page_markdown(module, intro=intro.format(module=module), pages=pages))
        NAV.append(NavEntry(section, display_name(module), path))


def save_reference_pages(runs: Sequence[RunRecord], section: str) -> None:
    """One mkdocstrings page per module of the algorithms, backends, MNIST code and experiments (and
    of any other module whose function computed one of `runs`), at reference/<module>.md, listed
    under `section` in the nav; each entry links to its definition on the module's source page."""
    run_modules = modules_of(run.function for run in runs)
    pages = code_pages(run_modules)
    for module in reference_modules(run_modules):
        path = reference_page_path(module)
        write_file(path, reference_page_markdown(module, pages))
        NAV.append(NavEntry(section, display_name(module), path))


def build_page_markdown(ctx: BuildContext, runs: Sequence[RunRecord], path: str = "build.md",
                        environment=None, gpu_measurements: str = "", store_measurements: str = "") -> str:
    """The Build page: this build's settings, whether the installed packages are the ones
    requirements.lock pins (`environment`, a provenance.LockReport; by default read now from the
    lock and the installed metadata), every run with its time, cache status and code, then the
    GPU measurements and the store-served builds the repository keeps (`gpu_measurements`,
    `store_measurements`: Markdown sections, "" for none; gen/build.py reads them from
    measurements/)."""
    from diffusion_lab.runcache.provenance import lock_report

    unique: dict[str, RunRecord] = {}
    for run in runs:
        unique.setdefault(run.key, run)  # one row per run, however often the pages asked for it
    runs = list(unique.values())
    labels = distinguishing_params(runs)
    return render_template(
        "build.md.j2",
        ctx=ctx,
        device_rule=device_rule_text(ctx),
        runs=[dict(vars(run), computed_by=computed_by_markdown(run, path), label=labels.get(run.key, ""),
                   used_by=uses_markdown(run, path), origin_cell=ORIGIN_CELLS[run.origin], precision_text=precision_text(run.precision),
                   threads_text=_recorded(run.threads), lanes_text=_recorded(run.lanes)) for run in runs],
        origins={origin: sum(run.origin == origin for run in runs) for origin in ORIGIN_WORDS},
        store=store_text(ctx.cache_url),
        computed_s=sum(run.compute_s for run in runs if not run.hit),
        build_s=sum(run.wall_s for run in runs),
        cache_dir=cache_dir_text(ctx.cache_dir),
        commit=git_commit(),
        environment=environment if environment is not None else lock_report(),
        gpu_measurements=gpu_measurements,
        store_measurements=store_measurements,
    )


# A run made before its manifest kept precision and threads.
NOT_RECORDED = "—"

# Where a run of this build came from (`RunRecord.origin`), in words.
ORIGIN_WORDS = {"computed": "computed now", "local": "read from the local cache", "remote": "read from the shared store"}
# The same in the Build page's table column.
ORIGIN_CELLS = {"computed": "**computed**", "local": "local", "remote": "store"}


def store_text(url: str) -> str:
    """The shared store as the page shows it: its URL without credentials or query, or "none"."""
    if not url:
        return "none"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"`{parts.scheme}://{host}{parts.path}`"


def device_rule_text(ctx: BuildContext) -> str:
    """The build's device and the precision rule of its type, with what the rule gives here: from
    the context and `mnist.precision` (through `BuildContext.precision`), never typed."""
    kind = ctx.device.type
    own = network_precision(ctx.device)
    chosen = "" if ctx.precision == own else (
        f", but this build computes at {PRECISION_WORDS[ctx.precision]}, "
        + ("as its PRECISION setting says" if ctx.precision_setting == ctx.precision
           else "the precision its shared store holds the runs at"))
    return (f"This build runs on {ctx.device_description}. Part B's networks run at the precision "
            f"`mnist.precision` resolves for the device where their recipe says `auto`: on {kind}, "
            f"{PRECISION_RULES.get(kind, 'fp32')}; here {PRECISION_WORDS[own]}{chosen}. "
            f"The precision is part of every run's cache key; the device is not. "
            f"Each run's device, precision, threads and lanes (the processes computing side by side "
            f"with it) are its own, as its manifest recorded them "
            f"({NOT_RECORDED}: made before manifests kept them).")


def _recorded(count: int | None) -> str:
    return NOT_RECORDED if count is None else str(count)


def precision_text(precision: str | None) -> str:
    """A run's precision in words ("bf16 autocast", "fp32"), or NOT_RECORDED."""
    return NOT_RECORDED if precision is None else PRECISION_WORDS.get(precision, precision)


def uses_markdown(run: RunRecord, page_path: str) -> str:
    """Links, from the page at `page_path`, to every figure and table that showed `run`."""
    by_page: dict[str, list[RunUse]] = {}
    for use in RUN_USES.get(run.key, []):
        by_page.setdefault(use.title, []).append(use)
    return "; ".join(f"{html.escape(title)}: " + ", ".join(use.markdown(page_path) for use in uses)
                     for title, uses in by_page.items()) or "no figure of its own (an input of other runs)"


def cache_dir_text(cache_dir: Path, checkout: Path = CHECKOUT) -> str:
    """The run cache's folder as any reader's machine would name it: relative to the checkout when
    it lies inside it, else the variable that set it; never the builder's absolute path."""
    try:
        return Path(cache_dir).resolve().relative_to(checkout.resolve()).as_posix()
    except ValueError:
        return "$DIFFUSION_LAB_CACHE (outside the checkout)"


def distinguishing_params(runs: Sequence[RunRecord], width: int = 40) -> dict[str, str]:
    """For runs of this build that share a name, what tells them apart, by key: the parameters whose
    values differ among them, each shortened to `width` characters ("image=mnist-test-1")."""
    by_name: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_name.setdefault(run.name, []).append(run)
    labels = {}
    for same in by_name.values():
        if len(same) < 2:
            continue
        names = sorted({name for run in same for name in run.params})
        differing = [name for name in names if len({_short_value(run.params.get(name), width) for run in same}) > 1]
        for run in same:
            labels[run.key] = ", ".join(f"{name}={_short_value(run.params.get(name), width)}" for name in differing)
    return labels


def _short_value(value, width: int) -> str:
    """A parameter's value in a few characters: an input's id, a key's first 12 hex digits, short JSON."""
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        value = value["id"]
    if isinstance(value, str) and len(value) >= 32 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


NAV_FILE = "SUMMARY.md"


def save_nav(entries: Sequence[NavEntry]) -> None:
    """Write the literate-nav file for `entries` and keep it off the site: it feeds the nav and is
    no page. (mkdocs' exclude_docs cannot say so: literate-nav marks the file "not in nav" before
    mkdocs applies exclude_docs to generated files, and a marked file is built.)"""
    write_file(NAV_FILE, nav_markdown(entries))
    mkdocs_gen_files.files.get_file_from_path(NAV_FILE).inclusion = InclusionLevel.EXCLUDED


def nav_markdown(entries: Sequence[NavEntry]) -> str:
    """A literate-nav SUMMARY.md in the order pages were saved, each section where it first appears."""
    items: list[NavEntry | str] = []  # a page without a section, or a section's name
    sections: dict[str, list[NavEntry]] = {}
    for entry in entries:
        if not entry.section:
            items.append(entry)
            continue
        if entry.section not in sections:
            sections[entry.section] = []
            items.append(entry.section)
        sections[entry.section].append(entry)
    lines: list[str] = []
    for item in items:
        if isinstance(item, NavEntry):
            lines.append(f"* [{item.title}]({item.path})")
        else:
            lines.append(f"* {item}")
            lines.extend(f"    * [{page.title}]({page.path})" for page in sections[item])
    return "\n".join(lines) + "\n"
