"""Part A, section 0: the stock sampler on three prompts at two step counts, before any loop of ours."""

from diffusion_lab.experiments import parta
from diffusion_lab.experiments.parta_backend import backend_for
from diffusion_lab.experiments.parta_plan import plan_for
from diffusion_lab.experiments.parta_stock import stock_prompts, stock_samples
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.report.figures import image_grid
from diffusion_lab.report.page import Page
from diffusion_lab.report.parta_figures import SECTION, quoted, short, size, value_range

ctx = BuildContext.from_env()
plan = plan_for(ctx.backend)
backend = backend_for(ctx)
page = Page("part-a/stock-pipeline.md", "A0. Sampling with the stock pipeline", ctx, section=SECTION,
            backend_label=backend.label)
model_runs = backend.runs + ([parta.judge_for(ctx, plan)] if plan.judge else [])

run = stock_samples(ctx, plan, backend)
stored = run.load("stock.pt")
steps = run.params["steps"]
prompts = stock_prompts(plan)
per_prompt = plan.stock_images_per_prompt
capped = run.metrics["capped_steps"]
capped_note = (f" The plan's {', '.join(map(str, capped))} steps exceed this model's T = "
               f"{len(backend.alphas_cumprod)} and are capped at T." if capped else "")

page.text(f"""
Before writing any loop, the write-up samples with the stock pipeline: three prompts at 20 steps and
at another step count, stage I at 64×64 and stage II's upsampling to 256×256. Here the sampler is
**{backend.stock_label}**; the model is **{backend.label}**.

Prompts: {", ".join(quoted(prompt) for prompt in plan.stock_prompts)}, {per_prompt} image{"s" if per_prompt > 1 else ""}
each, at {" and ".join(map(str, steps))} steps, CFG g = {plan.guidance:g}. Every step count starts from the
same noise, so the only difference between the rows is the number of steps.{capped_note}
""")


def titles(count: int, first_row: bool) -> list[str]:
    probabilities = stored["judge_probabilities"].get(count)
    cells = []
    for i, prompt in enumerate(prompts):
        lines = [f"{short(prompt)} #{i % per_prompt + 1}" if per_prompt > 1 else quoted(prompt)] if first_row else []
        if probabilities is not None:
            read = int(probabilities[i].argmax())
            lines.append(f"judge: {read} ({probabilities[i, read]:.2f})")
        cells.append("\n".join(lines))
    return cells


page.figure(
    image_grid([list(stored["stage1"][count]) for count in steps],
               cell_titles=[titles(count, r == 0) for r, count in enumerate(steps)],
               row_titles=[f"{count} steps" for count in steps], value_range=value_range(run),
               cell_inches=1.2 if per_prompt > 1 else 1.8),
    f"Stage I ({size(stored['stage1'][steps[0]])}) at {' and '.join(map(str, steps))} steps: {len(prompts)} "
    "samples per row, the same starting noise in every row."
    + (" Under each sample: the digit Part B's judge reads in it, and its probability." if plan.judge else ""),
    [*model_runs, run], pixelated=True,
)
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

rows, timing = run.metrics["rows"], run.metrics["timing"]
judged = "judge_accuracy" in rows[0]
page.table(
    ["steps", "wall time (s)", "images / s"] + (["judge accuracy"] if judged else []),
    [[row["steps"], f"{timing[str(row['steps'])]['seconds']:.2f}", f"{timing[str(row['steps'])]['images_per_s']:.1f}"]
     + ([f"{100 * row['judge_accuracy']:.0f}% of {len(prompts)}"] if judged else [])
     for row in rows],
    f"What each step count costs on `{ctx.device}`"
    + (" (stage I and stage II together)" if backend.has_stage2 else "")
    + (", and how many samples the judge reads as the digit their prompt names." if judged else "."),
    [*model_runs, run],
)
page.save()
