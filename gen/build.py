"""The Build page (every run of this build once, with the figures that show it, its time, cache status
and code) and the navigation."""

from diffusion_lab.experiments.gpu_session import load_sessions
from diffusion_lab.report.cited_measurements import cited_measurements_markdown, load_measurements
from diffusion_lab.report.gpu_measurements import gpu_measurements_markdown
from diffusion_lab.report.page import NAV, RUN_USES, NavEntry, build_page_markdown, save_nav, write_file
from diffusion_lab.report.store_measurements import load_records, store_measurements_markdown
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import BUILD_LOG

write_file("build.md", build_page_markdown(
    BuildContext.from_env(), list(BUILD_LOG),
    gpu_measurements=gpu_measurements_markdown(load_sessions()),
    # page.py has one slot for the repository's measurements after the GPU sessions: both go there.
    store_measurements=store_measurements_markdown(load_records()) + "\n" + cited_measurements_markdown(load_measurements()),
))
NAV.append(NavEntry("", "Build", "build.md"))
save_nav(NAV)
# The registries live for the whole mkdocs process: `mkdocs serve` rebuilds must start empty.
NAV.clear()
RUN_USES.clear()
BUILD_LOG.clear()
