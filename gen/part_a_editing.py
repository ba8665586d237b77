"""Part A, sections 1.7 to 1.7.3: SDEdit, drawn and web images, inpainting, text-conditional
image-to-image translation."""

from diffusion_lab.experiments import parta
from diffusion_lab.experiments.parta_backend import backend_for
from diffusion_lab.experiments.parta_plan import plan_for
from diffusion_lab.experiments.parta_upsample import inpainting_upsample, sdedit_upsample
from diffusion_lab.report.gallery import headline
from diffusion_lab.report.page import Page
from diffusion_lab.report.parta_figures import (
    SECTION,
    Stage2Figures,
    described,
    inpainting_row,
    is_unconditional,
    only_if,
    quoted,
    sdedit_row,
    sdedit_titles,
    similarity_plot,
)
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
plan = plan_for(ctx.backend)
backend = backend_for(ctx)
NO_OP_CFG = (' With the generic prompt "" the conditional and unconditional estimates are one and the same, '
             "so there guidance changes nothing; it matters in 1.7.3.")
page = Page("part-a/editing.md", "A2. Image-to-image translation", ctx, section=SECTION,
            backend_label=backend.label)
model_runs = backend.runs
stage2 = Stage2Figures(page, backend, model_runs)
steps = backend.timesteps
i_starts = ", ".join(map(str, plan.i_starts))
step, resemblance = plan.sdedit_extension_step, plan.sdedit_resemblance
no_op_cfg_note = only_if(is_unconditional(plan.generic_prompt), NO_OP_CFG)

page.text(f"""
Drawn by **{backend.label}**, on its {len(steps)} strided timesteps {steps[0]}, {steps[1]}, ..., {steps[-1]}.
From here on every loop uses classifier-free guidance at g = {plan.guidance:g}.{no_op_cfg_note}

## 1.7 Image-to-image translation (SDEdit)

An image is noised to timesteps[i_start] with the forward process and denoised from there with the
prompt {quoted(plan.generic_prompt)}: the model projects it back onto what it knows, keeping more of
the original the later it starts. i_start = {i_starts}, as in the write-up, and after them more i_starts,
{step} apart, until the edit resembles its input, which on another model than the write-up's may take
more steps: "resembles" means a correlation r ≥ {resemblance:g} between the edit's pixels and the
input's, measured on every edit and printed under it. All edits of an image run as one batch
(`editing.sdedit_ladder`): each joins the loop at its own i_start.
""")
sdedit_runs, sdedit_names = [], []
for image in plan.sdedit_images:
    run = parta.sdedit(ctx, plan, backend, image)
    what = f"SDEdit of {described(image.label, run.metrics['image_info'])}"
    sdedit_runs.append(run)
    sdedit_names.append(described(image.label, run.metrics["image_info"]))
    sdedit_row(page, run, model_runs, what)
    headline(page)
    stage2.add(run, sdedit_upsample(ctx, backend, run), sdedit_titles(run), what)
page.figure(similarity_plot(sdedit_runs, sdedit_names),
            "How much of its input each edit above kept (r: correlation of pixels, 1 = the same picture), at every "
            "i_start edited, shown or not, and the level taken to mean the edit resembles its input.",
            [*model_runs, *sdedit_runs])

page.text("""
## 1.7.1 Editing hand-drawn and web images

The same procedure on pictures that are not from the training distribution: one in a web style (a
typed digit) and two that stand in for hand drawings: pen strokes given as scripted mouse points, not
drawn by a hand, from `docs/inputs/` (made by `docs/inputs/draw_inputs.py`).
""")
drawn_runs, drawn_names = [], []
for image in plan.drawn_images:
    run = parta.sdedit(ctx, plan, backend, image)
    what = f"SDEdit of {image.label} (`{image.ref}`)"
    drawn_runs.append(run)
    drawn_names.append(image.label)
    sdedit_row(page, run, model_runs, what)
    stage2.add(run, sdedit_upsample(ctx, backend, run), sdedit_titles(run), what)
page.figure(similarity_plot(drawn_runs, drawn_names),
            "How much of its input each edit of 1.7.1 kept, at every i_start edited.", [*model_runs, *drawn_runs])

page.text(r"""
## 1.7.2 Inpainting

The loop runs from pure noise; after every step, the pixels outside the mask \(m\) are reset to the
original noised to the new timestep: \(x_{t'} \leftarrow m\,x_{t'} + (1-m)\,\text{forward}(x_{orig}, t')\).
""")
for pair in plan.inpaintings:
    run = parta.inpaint(ctx, plan, backend, pair)
    label = f"{described(pair.image.label, run.metrics['image_info'])} with the {pair.mask.label} (`{pair.mask.ref}`)"
    inpainting_row(page, run, label, model_runs, plan)
    stage2.add(run, inpainting_upsample(ctx, backend, run), ["Image Inpainted"], f"Inpainting {label}")

page.text("""
## 1.7.3 Text-conditional image-to-image translation

SDEdit again, now guided by a prompt of its own instead of the generic one, at the same i_starts and
extended by the same rule. How far each row follows the prompt and from where on it keeps the image is
what its figure shows""" + only_if(plan.judge, " and its caption says, read by Part B's judge") + """.
""")
text_runs, text_names = [], []
for edit in plan.text_edits:
    run = parta.text_image_to_image(ctx, plan, backend, edit)
    what = f"Text-conditional SDEdit of {described(edit.image.label, run.metrics['image_info'])}"
    text_runs.append(run)
    text_names.append(f"{quoted(edit.prompt)} on {described(edit.image.label, run.metrics['image_info'])}")
    sdedit_row(page, run, model_runs, what)
    stage2.add(run, sdedit_upsample(ctx, backend, run), sdedit_titles(run), what)
page.figure(similarity_plot(text_runs, text_names),
            "How much of its input each text-conditional edit kept, at every i_start edited.",
            [*model_runs, *text_runs])
page.save()
