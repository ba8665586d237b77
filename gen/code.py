"""Code behind the figures: the source of every module whose functions computed a run of this build,
and of the computation code those modules reach through their imports."""

from diffusion_lab.report.page import save_source_pages
from diffusion_lab.runcache.runs import BUILD_LOG

save_source_pages(
    BUILD_LOG,
    section="Code behind the figures",
    intro="""
The source of `{module}` as this build ran it, numbered with the file's own lines. Each figure's
provenance block links to the experiment function that computed its run; under a definition,
"Calls into" links on to the code of this package that it calls, and "Uses" and "Used by" follow
the imports. A cached run was computed by this same code: its cache key covers the source of every
module its experiment reaches, so an edit to any of them recomputes it.
""",
)
