"""Checks: the invariants the course's algorithms must keep, measured at build time on this build's
own model and runs (experiments/checks.py), each linked to the code it checks."""

from diffusion_lab.experiments.checks import check_results, invariant_checks
from diffusion_lab.experiments.parta_backend import backend_for
from diffusion_lab.experiments.parta_plan import plan_for
from diffusion_lab.report.checks_table import CHECK_HEADERS, check_rows, checks_summary
from diffusion_lab.report.page import Page
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
PATH = "checks.md"
plan = plan_for(ctx.backend)
backend = backend_for(ctx)
page = Page(PATH, "Checks", ctx, backend_label=backend.label)
run = invariant_checks(ctx, plan, backend)
checks = check_results(run)

page.text(f"""
The fall 2026 course draft lists invariants every student's code should pass: the interpolation's end points
are exact, CFG at w = 0 is the conditional estimate, inpainting leaves the known pixels unchanged to the last
bit, a view applied and inverted returns its input. This page measures those and a few more on this build's
own model ({backend.label}) and runs, while the site is built. A tolerance of 0 means the
invariant is exact arithmetic; the others bound float32 rounding or, for the forward process, the sampling
error of the measurement. {checks_summary(checks)}
""")
page.table(CHECK_HEADERS, check_rows(checks, PATH), "Every check, its measured value and its tolerance.", [run])
page.save()
