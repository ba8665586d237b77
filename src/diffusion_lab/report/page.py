"""Pages of the site: Markdown written through mkdocs-gen-files, every figure with its provenance.

A page script builds a `Page`, adds prose, figures and tables, and calls `save()`. Saving
registers the page for the navigation, so the nav lists exactly the pages that were rendered.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import jinja2

from diffusion_lab.report.code_graph import code_pages
from diffusion_lab.report.source_pages import (
    code_link,
    code_page_path,
    display_name,
    modules_of,
    source_page_markdown,
)
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.provenance import git_commit
from diffusion_lab.runcache.runs import RunRecord

import mkdocs_gen_files


@dataclass(frozen=True)
class NavEntry:
    section: str
    title: str
    path: str


# Pages saved in this build, in order: the last page script turns them into the nav.
NAV: list[NavEntry] = []


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
    """A link, from the page at `page_path`, to the source of the function that computed `run`."""
    return f"[`{display_name(run.function)}`]({code_link(run.function, page_path)})"


def provenance_block(runs: Sequence[RunRecord], ctx: BuildContext, backend_label: str, page_path: str) -> str:
    """A collapsed block naming seed, parameters, the code that computed each run, profile, backend,
    device, time, cache status, versions; `page_path` is where it is shown, for relative links."""
    hits = sum(run.hit for run in runs)
    status = "cache hit" if hits == len(runs) else ("computed now" if hits == 0 else f"{hits}/{len(runs)} cache hits")
    prepared = [
        dict(
            vars(run),
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

    def __post_init__(self) -> None:
        self._parts.append(f"# {self.title}\n")
        if not self.backend_label:
            self.backend_label = f"`{self.ctx.backend}`"

    def text(self, markdown: str) -> "Page":
        self._parts.append(markdown.strip() + "\n")
        return self

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
        extension = "gif" if data[:6] in (b"GIF87a", b"GIF89a") else "png"
        filename = filename or f"figure-{self._figures}.{extension}"
        asset = self._asset_path(filename)
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
        align = align or ["---"] * len(headers)
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
        self._parts.append(
            "\n".join(lines) + "\n/// table-caption\n" + caption + "\n///\n\n"
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


def build_page_markdown(ctx: BuildContext, runs: Sequence[RunRecord], path: str = "build.md",
                        environment=None) -> str:
    """The Build page: this build's settings, whether the installed packages are the ones
    requirements.lock pins (`environment`, a provenance.LockReport; by default read now from the
    lock and the installed metadata), then every run with its time, cache status and code."""
    from diffusion_lab.runcache.provenance import lock_report

    return render_template(
        "build.md.j2",
        ctx=ctx,
        runs=[dict(vars(run), computed_by=computed_by_markdown(run, path)) for run in runs],
        hits=sum(run.hit for run in runs),
        computed_s=sum(run.compute_s for run in runs if not run.hit),
        build_s=sum(run.wall_s for run in runs),
        cache_dir=ctx.cache_dir,
        commit=git_commit(),
        environment=environment if environment is not None else lock_report(),
    )


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
