"""The Build page (every run of this build, with time and cache status) and the navigation."""

from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.report.page import NAV, NavEntry, nav_markdown, render_template, write_file
from diffusion_lab.runcache.provenance import git_commit
from diffusion_lab.runcache.runs import BUILD_LOG

ctx = BuildContext.from_env()
runs = list(BUILD_LOG)
write_file(
    "build.md",
    render_template(
        "build.md.j2",
        ctx=ctx,
        runs=runs,
        hits=sum(run.hit for run in runs),
        computed_s=sum(run.compute_s for run in runs if not run.hit),
        build_s=sum(run.wall_s for run in runs),
        cache_dir=ctx.cache_dir,
        commit=git_commit(),
    ),
)
NAV.append(NavEntry("", "Build", "build.md"))
write_file("SUMMARY.md", nav_markdown(NAV))
# The registries live for the whole mkdocs process: `mkdocs serve` rebuilds must start empty.
NAV.clear()
BUILD_LOG.clear()
