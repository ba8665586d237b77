"""Part B, section 2: the time-conditioned DDPM (B2.1 to B2.3)."""

from diffusion_lab.experiments import partb, partb_training
from diffusion_lab.profiles import get_profile
from diffusion_lab.report.page import Page
from diffusion_lab.report.partb_figures import (
    TRAINING_COST_HEADERS, loss_curve, reverse_process_gif, samples_per_epoch, training_cost_rows, training_digit_count,
)
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
recipe = get_profile(ctx.profile).partb.time_ddpm
page = Page("part-b/time-conditioned-ddpm.md", "B2. Training a time-conditioned DDPM", ctx,
            section="Part B: diffusion from scratch")
trained = partb_training.ddpm_training(ctx, conditional=False)
samples = partb.ddpm_samples(ctx, conditional=False)

page.text(rf"""
## B2.1 Adding time conditioning

The UNet now predicts the noise \(\epsilon\) in \(x_t = \sqrt{{\bar\alpha_t}}\,x_0 + \sqrt{{1-\bar\alpha_t}}\,\epsilon\).
The normalized timestep \(t/T\) goes through two FCBlocks (Linear, GELU, Linear) whose outputs are
added to the unflattened bottleneck (2D channels) and to the first up-block (D channels).
With D = {recipe.num_hiddens} it has **{trained.metrics['num_parameters']:,} parameters**.

## B2.2 Training

\(T = {recipe.num_timesteps}\), \(\beta_t\) linear from {recipe.beta1:g} to {recipe.beta2:g}, \(t \sim U\{{1..T\}}\),
loss \(\lVert \epsilon - \epsilon_\theta(x_t, t/T) \rVert^2\); batch {recipe.batch_size}, {recipe.epochs} epochs,
Adam at {recipe.learning_rate:g} with ExponentialLR \(\gamma = 0.1^{{1/{recipe.epochs}}}\) per epoch,
{training_digit_count(recipe):,} training digits (`{ctx.profile}` profile; the write-up: D = 64, batch 128,
20 epochs, Adam 1e-3).
""")
loss_curve(page, trained, "Training loss of the time-conditioned UNet.")

page.text(r"""
## B2.3 Sampling

Algorithm B.3: from \(x_T \sim \mathcal{N}(0, I)\), for \(t = T..1\):
\(x_{t-1} = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}\hat x_0 + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t + \sqrt{\beta_t}\,z\), with \(z = 0\) at the last step.
""")
samples_per_epoch(page, trained, samples, n_cols=10, what="Samples from the time-conditioned UNet")
reverse_process_gif(page, trained, samples, n_cols=10, what="the time-conditioned UNet")
page.table(TRAINING_COST_HEADERS, training_cost_rows({"time-conditioned UNet": trained}),
           "What training the time-conditioned UNet cost on this build's device.", trained)
page.save()
