"""Part B, section 2: the time-conditioned DDPM (B2.1 to B2.3)."""

from diffusion_lab.experiments import judge_training, partb, partb_training
from diffusion_lab.experiments.partb_records import JudgeReference, TrainingSummary
from diffusion_lab.profiles import QUALITY_BAR
from diffusion_lab.report.gallery import headline
from diffusion_lab.report.gpu_measurements import unguided_on_gpu_text
from diffusion_lab.report.page import Page
from diffusion_lab.report.partb_figures import (
    TIME_SCORE_HEADERS, TRAINING_COST_HEADERS, class_share_chart, loss_curve, matched_start_text, optimizer_text,
    reverse_process_gif, samples_per_epoch, scored_samples_figure, scores_noise_text, scores_sampler_text,
    time_score_rows, training_cost_rows, training_digit_count, unguided_bar_text,
)
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
recipe = ctx.recipes.partb.time_ddpm
page = Page("part-b/time-conditioned-ddpm.md", "B2. Training a time-conditioned DDPM", ctx,
            section="Part B: diffusion from scratch")
trained = partb_training.ddpm_training(ctx, conditional=False)
samples = partb.ddpm_samples(ctx, conditional=False)

page.text(rf"""
## B2.1 Adding time conditioning

The UNet now predicts the noise \(\epsilon\) in \(x_t = \sqrt{{\bar\alpha_t}}\,x_0 + \sqrt{{1-\bar\alpha_t}}\,\epsilon\).
The normalized timestep \(t/T\) goes through two FCBlocks (Linear, GELU, Linear) whose outputs are
added to the unflattened bottleneck (2D channels) and to the first up-block (D channels).
With D = {recipe.num_hiddens} it has **{TrainingSummary.of(trained).num_parameters:,} parameters**.

## B2.2 Training

\(T = {recipe.num_timesteps}\), \(\beta_t\) linear from {recipe.beta1:g} to {recipe.beta2:g}, \(t \sim U\{{1..T\}}\),
loss \(\lVert \epsilon - \epsilon_\theta(x_t, t/T) \rVert^2\); batch {recipe.batch_size}, {recipe.epochs} epochs
over {training_digit_count(recipe):,} training digits; {optimizer_text(recipe)} (`{ctx.profile}` profile;
the write-up: D = 64, batch 128, 20 epochs, Adam 1e-3 with ExponentialLR \(\gamma = 0.1^{{1/20}}\)).
""")
loss_curve(page, trained, "Training loss of the time-conditioned UNet.")

page.text(r"""
## B2.3 Sampling

[Algorithm B.2](unet.md#algorithms-b1b4): from \(x_T \sim \mathcal{N}(0, I)\), for \(t = T..1\):
\(x_{t-1} = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}\hat x_0 + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t + \sqrt{\beta_t}\,z\), with \(z = 0\) at the last step.
""")
samples_per_epoch(page, trained, samples, n_cols=10, what="Samples from the time-conditioned UNet")
headline(page)
reverse_process_gif(page, trained, samples, n_cols=10, what="the time-conditioned UNet")
judged = judge_training.judge_training(ctx)
reference = partb.judge_reference(ctx)
scores = partb.time_ddpm_scores(ctx)
judge_recipe = ctx.recipes.partb.judge
page.text(f"""
## Judging the samples

A separate small CNN classifier, trained by this project on the MNIST training set
({judge_recipe.epochs} epochs, {TrainingSummary.of(judged).num_parameters:,} parameters), reads the samples.
Its accuracy on the 10,000 test digits is **{100 * JudgeReference.of(reference).test_accuracy:.2f}%**.
It reads a sample as a digit *with confidence* when its largest class probability is at least 0.9.
The *Fréchet distance* compares the judge's penultimate-layer features ({judge_recipe.feature_dim}
dimensions) of the samples with those of the test set, as FID does with Inception features, and the
same number of real training digits ({reference.params['count']:,}) gives its floor,
**{JudgeReference.of(reference).frechet_floor:.2f}**, the unit of the "× real digits'" column. Every row
scores {scores.params['samples']:,} samples.{scores_noise_text(trained)}

{matched_start_text(scores, reference, trained)}

{unguided_bar_text(scores, reference, trained, QUALITY_BAR)}

{unguided_on_gpu_text(page.path)}
""")
page.table(TIME_SCORE_HEADERS, time_score_rows(scores, reference, trained),
           "What the judge reads in the time-conditioned UNet's samples at each kept checkpoint, and in real digits. "
           f"The samples are drawn with {scores_sampler_text(scores, recipe.num_timesteps)}.",
           [trained, judged, reference, scores])
scored_samples_figure(page, scores, trained)
page.figure(class_share_chart(scores, reference, trained, QUALITY_BAR),
            "The share of each digit among the samples, as the judge reads them (its most probable class), "
            "beside real training digits'. A model that forgets a digit shows a missing bar.",
            [trained, reference, scores])

page.text("## Cost")
page.table(TRAINING_COST_HEADERS, training_cost_rows({"time-conditioned UNet": trained}),
           "What training the time-conditioned UNet cost on this build's device.", trained)
page.save()
