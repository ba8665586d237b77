"""The Build page (every run of this build, with time, cache status and code) and the navigation."""

from diffusion_lab.report.page import NAV, NavEntry, build_page_markdown, nav_markdown, write_file
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import BUILD_LOG

write_file("build.md", build_page_markdown(BuildContext.from_env(), list(BUILD_LOG)))
NAV.append(NavEntry("", "Build", "build.md"))
write_file("SUMMARY.md", nav_markdown(NAV))
# The registries live for the whole mkdocs process: `mkdocs serve` rebuilds must start empty.
NAV.clear()
BUILD_LOG.clear()
