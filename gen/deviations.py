"""Deviations from the write-up: every value of this build's Part A plan, model and Part B recipes
that differs from the write-up's, computed from the configuration data (report/deviations.py), and
which of the devices the code supports have run on hardware (this build and measurements/)."""

from diffusion_lab.experiments.parta_backend import backend_for
from diffusion_lab.experiments.parta_plan import plan_for
from diffusion_lab.profiles import get_profile
from diffusion_lab.report.deviations import (
    agreement_text,
    device_statuses,
    devices_markdown,
    devices_ran,
    deviations_table,
    model_facts,
    part_a_deviations,
    part_b_deviations,
    showcase_deviations,
)
from diffusion_lab.report.page import NAV, Page
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
PATH = "deviations.md"
rendered = {entry.path for entry in NAV}
part_a = part_a_deviations(plan_for("deepfloyd"), plan_for(ctx.backend), model_facts(backend_for(ctx)))
part_b = part_b_deviations(get_profile("full"), ctx.recipes)
shown = showcase_deviations(get_profile("full"), ctx.recipes)
page = Page(PATH, "Deviations from the write-up", ctx)

page.text(f"""
Where this build (profile `{ctx.profile}`, backend `{ctx.backend}`) differs from the write-up. Nothing
here is typed by hand: the rows are computed while the site is built, by comparing this build's
configuration, value by value, with the data that holds the write-up's setup: Part A's plan for
DeepFloyd IF (the write-up's prompts and settings, with Grace Hopper's photo standing in for its
Campanile, which this repository does not ship) and IF's own constants (model, schedule, stride,
image size), and for Part B the course recipe the write-up follows (the `full` profile). A value
that agrees is not listed; the last column links the page that shows it.

## Part A: the model and the plan

{agreement_text(part_a, "Part A")}

{deviations_table(part_a, PATH, pages=rendered)}

## Part B: the training recipes

{agreement_text(part_b, "Part B's recipes")} The write-up column is the course recipe, except
where the write-up itself says otherwise (its guidance scale).

{deviations_table(part_b, PATH, "write-up (course recipe)", pages=rendered)}

## What the pages show and measure

The write-up fixes few of these (how many samples a grid shows, how many the judge reads, which
guidance scales are swept): they are compared with the `full` profile, which follows the write-up
wherever it says. {agreement_text(shown, "them")}

{deviations_table(shown, PATH, "full profile", pages=rendered)}

## Devices

The devices the code runs on (`DIFFUSION_LAB_DEVICE`; empty: the first of them this machine has), and
which of them have run on hardware, computed from this build's device and the runs kept in
`measurements/`.

{devices_markdown(device_statuses(devices_ran(ctx)))}
""")
page.save()
