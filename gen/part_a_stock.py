"""Part A, section 0: the stock sampler on three prompts at two step counts, before any loop of ours."""

from diffusion_lab.experiments import parta
from diffusion_lab.experiments.parta_backend import backend_for
from diffusion_lab.experiments.parta_plan import plan_for
from diffusion_lab.experiments.parta_stock import stock_prompts, stock_samples
from diffusion_lab.report.figures import image_grid
from diffusion_lab.report.gallery import headline
from diffusion_lab.report.page import Page
from diffusion_lab.report.parta_figures import (
    SECTION,
    capped_steps_note,
    existing_runs,
    only_if,
    plural,
    quoted,
    size,
    stock_cost_headers,
    stock_cost_rows,
    stock_is_judged,
    stock_stage1_grid,
    value_range,
)
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
plan = plan_for(ctx.backend)
backend = backend_for(ctx)
page = Page("part-a/stock-pipeline.md", "A0. Sampling with the stock pipeline", ctx, section=SECTION,
            backend_label=backend.label)
model_runs = existing_runs(*backend.runs, parta.judge_for(ctx, plan))

run = stock_samples(ctx, plan, backend)
stored = run.load("stock.pt")
steps = run.params["steps"]
prompts = stock_prompts(plan)
per_prompt = plan.stock_images_per_prompt
capped_note = capped_steps_note(run, len(backend.alphas_cumprod))

page.text(f"""
Before writing any loop, the write-up samples with the stock pipeline: three prompts at 20 steps and
at another step count, stage I at 64×64 and stage II's upsampling to 256×256. Here the sampler is
**{backend.stock_label}**; the model is **{backend.label}**.

Prompts: {", ".join(quoted(prompt) for prompt in plan.stock_prompts)}, {per_prompt} {plural("image", per_prompt)}
each, at {" and ".join(map(str, steps))} steps, CFG g = {plan.guidance:g}. Every step count starts from the
same noise, so the only difference between the rows is the number of steps.{capped_note}
""")
page.figure(
    stock_stage1_grid(run, per_prompt),
    f"{plan.stock_samples_note} ({size(stored['stage1'][steps[0]])}) at {' and '.join(map(str, steps))} steps: "
    f"{len(prompts)} samples per row, the same starting noise in every row."
    + only_if(plan.judge, " Under each sample: the digit Part B's judge reads in it, and its probability."),
    [*model_runs, run],
)
headline(page)
if backend.has_stage2:
    page.figure(
        image_grid([list(stored["stage2"][count]) for count in steps],
                   col_titles=[quoted(prompt) for prompt in prompts],
                   row_titles=[f"{count} steps\n+ stage II" for count in steps],
                   value_range=value_range(run), cell_inches=2.6),
        f"The same samples through stage II, {size(stored['stage1'][steps[0]])} -> {size(stored['stage2'][steps[0]])} "
        f"pixels, conditioned on their prompts: {backend.stage2_label}.",
        [*model_runs, run],
    )
else:
    page.text("This backend has no stage II upsampler: its samples stay at their native size.")

page.table(
    stock_cost_headers(run),
    stock_cost_rows(run),
    f"What each step count costs on `{ctx.device}`"
    + only_if(backend.has_stage2, " (stage I and stage II together)")
    + only_if(stock_is_judged(run), ", and how many samples the judge reads as the digit their prompt names") + ".",
    [*model_runs, run],
)
page.save()
