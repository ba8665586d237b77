"""Code behind the figures: the source of every module whose functions computed a run of this build."""

from diffusion_lab.report.page import save_source_pages
from diffusion_lab.runcache.runs import BUILD_LOG

save_source_pages(
    BUILD_LOG,
    section="Code behind the figures",
    intro="""
The source of `{module}` as this build ran it, numbered with the file's own lines. Each figure's
provenance block links to the function here that computed its run. A cached run was computed by
this same code: its cache key covers the source of the code it runs, so an edit recomputes it.
""",
)
