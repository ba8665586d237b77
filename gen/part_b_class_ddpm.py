"""Part B, section 3: the class-conditioned DDPM with classifier-free guidance (B2.4, B2.5), judged."""

from diffusion_lab.experiments import judge_training, partb, partb_training
from diffusion_lab.experiments.partb_records import GuidanceSweep, TrainingSummary
from diffusion_lab.profiles import COURSE_GUIDANCE, QUALITY_BAR
from diffusion_lab.report.figures import image_grid
from diffusion_lab.report.gallery import headline
from diffusion_lab.report.gpu_measurements import guided_on_gpu_text
from diffusion_lab.report.page import Page
from diffusion_lab.report.partb_figures import (
    WRITE_UP_GUIDANCE,
    guidance_in_sweep_text,
    GUIDANCE_SWEEP_HEADERS,
    TRAINING_COST_HEADERS,
    guidance_sweep_rows,
    guided_bar_text,
    how_trained_like,
    last_checkpoint_label,
    loss_curve,
    ordinal,
    reverse_process_gif,
    samples_per_epoch,
    training_cost_rows,
)
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
recipe = ctx.recipes.partb.class_ddpm
show = partb.showcase(ctx)
page = Page("part-b/class-conditioned-ddpm.md", "B3. Class conditioning and classifier-free guidance", ctx,
            section="Part B: diffusion from scratch")
trained = partb_training.ddpm_training(ctx, conditional=True)
samples = partb.ddpm_samples(ctx, conditional=True)

page.text(rf"""
## B2.4 Adding class conditioning

Two more FCBlocks embed a one-hot class vector \(c\) (zeroed with probability {recipe.p_uncond} during
training, so the same network also learns the unconditional estimate): the bottleneck becomes
\(c_1 \odot \text{{unflatten}} + t_1\) and the first up-block \(c_2 \odot \text{{up}}_1 + t_2\).
With D = {recipe.num_hiddens} the model has **{TrainingSummary.of(trained).num_parameters:,} parameters**;
{how_trained_like(recipe, ctx.recipes.partb.time_ddpm, "time-conditioned")}.
""")
loss_curve(page, trained, "Training loss of the class-conditioned UNet.")

page.text(rf"""
## B2.5 Sampling with classifier-free guidance

Each step evaluates the conditional and the unconditional estimate and combines them as
\(\epsilon = \epsilon_u + g\,(\epsilon_c - \epsilon_u)\). The course recipe uses \(g = {COURSE_GUIDANCE:g}\); the write-up
says {WRITE_UP_GUIDANCE:g}. {guidance_in_sweep_text(show.sweep_scales)}
""")
samples_per_epoch(page, trained, samples, n_cols=10, per_class=show.per_class_grid,
                  what=f"{show.per_class_grid} samples of each digit (one column per digit) at g = {COURSE_GUIDANCE:g}")
headline(page)
reverse_process_gif(page, trained, samples, n_cols=10, per_class=show.per_class_grid,
                    what=f"the class-conditioned UNet at g = {COURSE_GUIDANCE:g}")

judged = judge_training.judge_training(ctx)
reference = partb.judge_reference(ctx)
sweep = partb.guidance_sweep(ctx)
page.text(f"""
## Judging the samples

The judge of [B2](time-conditioned-ddpm.md#judging-the-samples) reads {sweep.params['per_class']} samples of
each digit per guidance scale. *Judge accuracy* is the share it labels with the digit they were asked
to be; the Fréchet distance is in units of {reference.params['count']:,} real training digits' (the last row).

{guided_bar_text(sweep, reference, QUALITY_BAR)}

{guided_on_gpu_text(page.path)}
""")
page.table(
    GUIDANCE_SWEEP_HEADERS,
    guidance_sweep_rows(sweep, reference),
    f"The guidance sweep: {sweep.params['per_class']} samples of each digit per g, from the last kept checkpoint "
    f"({last_checkpoint_label(trained)}), drawn with Part A's strided sampler on {GuidanceSweep.of(sweep).steps} of the "
    f"{recipe.num_timesteps} steps (every {ordinal(sweep.params['stride'])}).",
    [trained, judged, reference, sweep],
)
examples = sweep.load("examples.pt")
scales = sweep.params["scales"]
page.figure(
    image_grid([list(examples[str(g)]) for g in scales], row_titles=[f"g = {g:g}" for g in scales],
               col_titles=[str(d) for d in range(10)], cell_inches=0.7),
    "The first sample of each digit at each guidance scale of the sweep (same seed per scale).",
    [trained, sweep],
)

page.text("## Cost")
page.table(
    TRAINING_COST_HEADERS,
    training_cost_rows({
        "single-step denoiser": partb_training.denoiser_training(ctx),
        "time-conditioned UNet": partb_training.ddpm_training(ctx, conditional=False),
        "class-conditioned UNet": trained,
        "judge classifier": judged,
    }),
    "Training wall time and throughput of every Part B model on this build's device.",
    [partb_training.denoiser_training(ctx), partb_training.ddpm_training(ctx, conditional=False), trained, judged],
)
page.save()
