"""The home page: what this site is, its headline figures, where this build differs from the
write-up, what its runs cost, how to rebuild it. Rendered after every content page (their
headlines and runs are known then) and listed first in the nav."""

from diffusion_lab.experiments.parta_backend import backend_for
from diffusion_lab.experiments.parta_plan import plan_for
from diffusion_lab.profiles import PROFILES, get_profile
from diffusion_lab.report.deviations import model_facts, part_a_deviations, part_b_deviations, summary_line
from diffusion_lab.report.gallery import gallery_markdown, take_headlines
from diffusion_lab.report.page import NAV, NavEntry, render_template, write_file
from diffusion_lab.report.try_it import home_section
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.provenance import git_commit
from diffusion_lab.runcache.runs import BUILD_LOG

ctx = BuildContext.from_env()
part_a = part_a_deviations(plan_for("deepfloyd"), plan_for(ctx.backend), model_facts(backend_for(ctx)))
part_b = part_b_deviations(get_profile("full"), ctx.recipes)
write_file("index.md", render_template(
    "home.md.j2", ctx=ctx, profiles=PROFILES, commit=git_commit(),
    gallery=gallery_markdown(take_headlines(), "index.md"),
    part_a_summary=summary_line(part_a), part_b_summary=summary_line(part_b),
    runs=list(BUILD_LOG),
) + home_section("index.md"))
NAV.insert(0, NavEntry("", "Home", "index.md"))
