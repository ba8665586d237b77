"""Part B, the course's current version: denoising pure noise, then time- and class-conditioned flow matching."""

from diffusion_lab.experiments import judge_training, partb, partb_flow, partb_training, quality
from diffusion_lab.experiments.partb_records import TrainingSummary
from diffusion_lab.profiles import COURSE_GUIDANCE, QUALITY_BAR
from diffusion_lab.report.flow_figures import (
    CLASS_FLOW_SCORE_HEADERS, COMPUTE_HEADERS, FLOW_SCORE_HEADERS, SCHEDULE_HEADERS, compute_rows, flow_bar_text,
    flow_score_rows, loss_pair_plot, ode_path_gif, pure_noise_grids, pure_noise_text, sampler_text, schedule_grid,
    schedule_rows, schedule_text,
)
from diffusion_lab.report.gallery import headline
from diffusion_lab.report.page import Page
from diffusion_lab.report.partb_figures import (
    TRAINING_COST_HEADERS, checkpoint_labels_text, how_trained_like, loss_curve, optimizer_text, samples_per_epoch,
    training_cost_rows, training_digit_count,
)
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
book = ctx.recipes.partb
show = partb.showcase(ctx)
flow = partb_flow.flow_showcase(ctx)
page = Page("part-b/flow-matching.md", "B4. Flow matching (the course's current Part B)", ctx,
            section="Part B: diffusion from scratch")

page.text("""
The course has since replaced this Part B's DDPM with flow matching ("Flow Matching from Scratch!").
This page follows that version with the same code: the same UNets, training loop, precision and
generator discipline as B1-B3; only the loss and the sampler change.
""")

# --- denoising pure noise ------------------------------------------------------------------------
pure = partb_training.pure_noise_training(ctx)
pure_results = partb_flow.pure_noise_results(ctx)
inputs_grid, outputs_grid = pure_noise_grids(pure, pure_results)
page.text(rf"""
## Denoising pure noise

The UNet of the single-step denoiser of [B1](single-step-denoiser.md) (D = {book.pure_noise.num_hiddens},
batch {book.pure_noise.batch_size}, {book.pure_noise.epochs} epochs over {training_digit_count(book.pure_noise):,}
digits, Adam at {book.pure_noise.learning_rate:g}; the course: B1's recipe), but its input is pure noise \(z \sim \mathcal{{N}}(0, I)\) instead of a noisy digit: the loss
\(\lVert D_\theta(z) - x \rVert^2\) asks it to turn noise into a digit in one step. The input says nothing about
which digit, so the L2-optimal answer is the same image for every \(z\): the average training digit.
""")
loss_curve(page, pure, "Training loss of the UNet fed pure noise.")
page.figure(inputs_grid, "The pure-noise inputs (shown over [-2, 2]).", [pure, pure_results])
page.figure(outputs_grid, "What the UNet makes of those inputs after each kept checkpoint ("
            + checkpoint_labels_text(pure) + "), and the mean of the training digits.",
            [pure, pure_results])
page.text(pure_noise_text(pure, pure_results))

# --- time-conditioned flow matching ---------------------------------------------------------------
time_recipe = book.time_flow
time_trained = partb_training.flow_training(ctx, conditional=False)
time_samples = partb_flow.flow_samples(ctx, conditional=False)
page.text(rf"""
## Time-conditioned flow matching

Noise \(x_0 \sim \mathcal{{N}}(0, I)\) and a digit \(x_1\) are joined by the straight path
\(x_t = (1 - t)\,x_0 + t\,x_1\), \(t \sim U[0, 1]\). Its velocity \(x_1 - x_0\) does not depend on \(t\);
the time-conditioned UNet of [B2](time-conditioned-ddpm.md) (t fed in [0, 1]) regresses it with
\(\lVert (x_1 - x_0) - u_\theta(x_t, t) \rVert^2\). With D = {time_recipe.num_hiddens} it has
**{TrainingSummary.of(time_trained).num_parameters:,} parameters**. Batch {time_recipe.batch_size}, {time_recipe.epochs} epochs
over {training_digit_count(time_recipe):,} training digits; {optimizer_text(time_recipe)} (`{ctx.profile}` profile;
the course: D = 64, batch 64, 10 epochs, Adam 1e-2 decayed exponentially to 0.1 of it over training).

Sampling integrates \(dx/dt = u_\theta(x, t)\) from noise at \(t = 0\) to \(t = 1\); this build uses
{sampler_text(time_samples)} (the course: Euler, 50 steps).
""")
loss_curve(page, time_trained, "Training loss of the time-conditioned flow-matching UNet.")
samples_per_epoch(page, time_trained, time_samples, n_cols=10,
                  what="Samples from the time-conditioned flow-matching UNet")
ode_path_gif(page, time_trained, time_samples, n_cols=10, what="Samples of the time-conditioned UNet")

judged = judge_training.judge_training(ctx)
reference = partb.judge_reference(ctx)
time_scores = partb_flow.flow_scores(ctx, conditional=False)
page.text(f"""
The judge of [B2](time-conditioned-ddpm.md#judging-the-samples) reads {time_scores.params['samples']:,} samples of
the last checkpoint. {flow_bar_text(time_scores, reference, QUALITY_BAR)}
""")
page.table(FLOW_SCORE_HEADERS, flow_score_rows(time_scores, reference, time_trained),
           "What the judge reads in the time-conditioned flow model's samples, and in real digits.",
           [time_trained, judged, reference, time_scores])

# --- without the learning-rate schedule ------------------------------------------------------------
constant_recipe = book.time_flow_constant_lr
constant_trained = partb_training.constant_lr_flow_training(ctx)
constant_scores = partb_flow.constant_lr_scores(ctx)
constant_samples = partb_flow.constant_lr_samples(ctx)
schedule = quality.schedule_verdict(time_scores, constant_scores, reference)
page.text(f"""
## Without the learning-rate schedule

The course asks: "can we get rid of the annoying learning rate scheduler?" The time-conditioned model
above is trained again at one constant learning rate, **{constant_recipe.learning_rate:g}**, with everything
else as above: the same width, batch, precision, images and checkpoints, and the same seeds, so the
same initial weights, the same batches in the same order and the same noise; the two runs differ in
the schedule alone. The rate is the scheduled run's mean learning rate over its steps, to two figures:
both runs take the same summed step size, and the question becomes whether spreading it as the
schedule does (large early, small at the end) is worth the scheduler. It follows from the schedule
alone and was fixed before either run was judged. The judge reads as many samples of each last
checkpoint ({constant_scores.params['samples']:,}), drawn by the same sampler from the same noise;
a difference in the confident share within two standard errors of it counts as level.
""")
page.table(COMPUTE_HEADERS, compute_rows({"scheduled": (time_trained, []), "constant rate": (constant_trained, [])}),
           "What the two runs were trained with.", [time_trained, constant_trained])
page.table(SCHEDULE_HEADERS, schedule_rows(schedule, time_trained, constant_trained, time_scores, reference),
           "What the judge reads in the scheduled run's samples, the constant rate's, and real digits.",
           [time_trained, constant_trained, judged, reference, time_scores, constant_scores])
page.text(schedule_text(schedule, constant_trained))
page.figure(schedule_grid(time_trained, time_samples, constant_samples),
            "The scheduled run's samples (upper row of each pair) and the constant rate's (lower), from the "
            "same noise, after each kept checkpoint (" + checkpoint_labels_text(time_trained) + ").",
            [time_trained, constant_trained, time_samples, constant_samples])
page.figure(loss_pair_plot(time_trained, constant_trained),
            "Training loss of both runs, one point per optimizer step, with running means.",
            [time_trained, constant_trained])

# --- class-conditioned flow matching --------------------------------------------------------------
class_recipe = book.class_flow
class_trained = partb_training.flow_training(ctx, conditional=True)
class_samples = partb_flow.flow_samples(ctx, conditional=True)
page.text(rf"""
## Class-conditioned flow matching

The class-conditioned UNet of [B3](class-conditioned-ddpm.md) regresses the same velocity with a one-hot
class \(c\), zeroed with probability {class_recipe.p_uncond} so that it also learns the unconditional
velocity; sampling follows \(u = u_u + g\,(u_c - u_u)\) with \(g = {COURSE_GUIDANCE:g}\), both halves in one
network call. With D = {class_recipe.num_hiddens} it has **{TrainingSummary.of(class_trained).num_parameters:,} parameters**;
{how_trained_like(class_recipe, time_recipe, "time-conditioned flow")}.
""")
loss_curve(page, class_trained, "Training loss of the class-conditioned flow-matching UNet.")
samples_per_epoch(page, class_trained, class_samples, n_cols=10, per_class=show.per_class_grid,
                  what=f"{show.per_class_grid} samples of each digit (one column per digit) at g = {COURSE_GUIDANCE:g}, "
                       f"{sampler_text(class_samples)},")
headline(page)
ode_path_gif(page, class_trained, class_samples, n_cols=10, per_class=show.per_class_grid,
             what=f"Samples of the class-conditioned UNet at g = {COURSE_GUIDANCE:g}")

class_scores = partb_flow.flow_scores(ctx, conditional=True)
page.text(f"""
The judge reads {class_scores.params['samples'] // 10:,} samples of each digit of the last checkpoint at
g = {COURSE_GUIDANCE:g}. {flow_bar_text(class_scores, reference, QUALITY_BAR)}
""")
page.table(CLASS_FLOW_SCORE_HEADERS, flow_score_rows(class_scores, reference, class_trained),
           "What the judge reads in the class-conditioned flow model's samples, and in real digits.",
           [class_trained, judged, reference, class_scores])

page.text("## Cost")
page.table(
    TRAINING_COST_HEADERS,
    training_cost_rows({"UNet fed pure noise": pure, "time-conditioned flow UNet": time_trained,
                        "... at a constant learning rate": constant_trained,
                        "class-conditioned flow UNet": class_trained}),
    "What training the flow-matching page's models cost on this build's device.",
    [pure, time_trained, constant_trained, class_trained],
)
page.save()
