"""Part B, the networks: the three UNets drawn from the models themselves (B1.1, B2.1, B2.4) and
the training and sampling algorithms B.1-B.4 beside the code that runs them."""

from diffusion_lab.experiments.partb_architecture import architecture_run
from diffusion_lab.profiles import COURSE_GUIDANCE
from diffusion_lab.report.algorithm_boxes import Algorithm, algorithm_markdown
from diffusion_lab.report.architecture import (
    architecture_figure,
    block_table,
    additions_text,
    condition_sentence,
    entry_summary,
    input_width,
    operations_table,
    resolution_walk,
    skip_connections,
)
from diffusion_lab.report.gallery import headline
from diffusion_lab.report.page import Page
from diffusion_lab.report.partb_figures import WRITE_UP_GUIDANCE, optimizer_text
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
book = ctx.recipes.partb
PATH = "part-b/unet.md"
page = Page(PATH, "B1.1 Implementing the UNet", ctx, section="Part B: diffusion from scratch")
unconditional = architecture_run(ctx, "denoiser")
time_conditioned = architecture_run(ctx, "time_ddpm")
class_conditioned = architecture_run(ctx, "class_ddpm")
u, t, c = unconditional.metrics, time_conditioned.metrics, class_conditioned.metrics

page.text(f"""
Part B's networks are one UNet in three variants. Nothing on this page is drawn by hand: each
model is built from this build's `{ctx.profile}` recipe, with the initial weights its training
run starts from, and traced (torch.fx, one node per top-level block) through one forward pass on
a blank digit, which records the shape every block returns. The diagrams, tables and numbers
below are read from that trace; D is the recipe's number of hidden channels.

The unconditional UNet of the single-step denoiser (B1) takes the image through the resolutions
{resolution_walk(u)}; {len(skip_connections(u))} skip connections carry each encoder output
across to the concatenation (C) at the start of the decoder stage of the same resolution. With
D = {u['num_hiddens']} it has **{u['num_parameters']:,} parameters**.
""")
architecture_figure(
    page, unconditional,
    f"The unconditional UNet at D = {u['num_hiddens']}, traced. Each box is a top-level block: its class, its "
    "name and channels in → out (in units of D), and the shape it returned (channels × height × width, "
    "batch left out); circles are concatenations (C). Rows are resolutions; dashed arcs are the skip "
    "connections.",
)
headline(page)
block_table(
    page, unconditional,
    f"The blocks of the unconditional UNet in the order they run, on one 1 × 28 × 28 digit, with the "
    f"shape each returned and its trainable parameters, which add up to the model's {u['num_parameters']:,}.",
)
page.text("""
The write-up defines the blocks from standard operations. Here each is read from the model's own
classes: Conv2d(k, s, p) is `nn.Conv2d` with kernel size k, stride s and padding p (likewise
ConvTranspose2d and AvgPool2d(k)), BN is `nn.BatchNorm2d` and GELU `nn.GELU`.
""")
operations_table(
    page, unconditional,
    "The operations of the unconditional UNet, leaf-most first: what each is made of, and what it did "
    "to the shapes where the model first uses it.",
)

page.text(f"""
## B2.1 Adding time conditioning

The DDPM's UNet also takes the timestep, as \\(t/T \\in (0, 1]\\). It is the same encoder and decoder
with {additions_text(t, u)} added: {condition_sentence(t)}.
With D = {t['num_hiddens']} (the `{ctx.profile}` recipe of the time-conditioned DDPM) it has
**{t['num_parameters']:,} parameters**.
""")
architecture_figure(
    page, time_conditioned,
    f"The time-conditioned UNet at D = {t['num_hiddens']}, traced, as the unconditional one; below it the "
    f"FCBlocks that embed the time: {entry_summary(t)}.",
)
operations_table(page, time_conditioned, "The operations the time-conditioned UNet adds to the unconditional one.",
                 new_since=unconditional)
block_table(
    page, time_conditioned,
    f"The blocks of the time-conditioned UNet in the order they run, with their shapes and parameters, "
    f"which add up to the model's {t['num_parameters']:,}.",
)

page.text(f"""
## B2.4 Adding class conditioning

The class-conditioned UNet also takes \\(c\\), a one-hot vector over the {input_width(c, "c")} digits (all zeros
for "no class", which classifier-free guidance needs). It adds {additions_text(c, t)}
to the time-conditioned UNet: {condition_sentence(c)}.
With D = {c['num_hiddens']} it has **{c['num_parameters']:,} parameters**.
""")
architecture_figure(
    page, class_conditioned,
    f"The class-conditioned UNet at D = {c['num_hiddens']}, traced; below it the FCBlocks of the class and "
    f"the time: {entry_summary(c)}.",
)
operations_table(page, class_conditioned, "The operations the class-conditioned UNet adds to the time-conditioned one.",
                 new_since=time_conditioned)
block_table(
    page, class_conditioned,
    f"The blocks of the class-conditioned UNet in the order they run, with their shapes and parameters, "
    f"which add up to the model's {c['num_parameters']:,}.",
)

time_recipe, class_recipe = book.time_ddpm, book.class_ddpm
schedule = r"\(\beta_t\) linear from {:g} to {:g}, \(\alpha_t = 1 - \beta_t\), \(\bar\alpha_t = \prod_{{s \le t}} \alpha_s\)"
forward = r"\(x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon\)"
reverse = (r"\(x_{t-1} = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t}\,\hat x_0"
           r" + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\,x_t + \sqrt{\beta_t}\,z\)")
x0_hat = r"\(\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\hat\epsilon) / \sqrt{\bar\alpha_t}\)"
noise = r"\(z \thicksim \mathcal{N}(0, I)\) if \(t > 1\), else \(z = 0\)"
uniform_t = r"\(t \thicksim \mathcal{U}\{1, \ldots, T\}\)"
gaussian = r"\(\epsilon \thicksim \mathcal{N}(0, I)\)"

page.text(f"""
## Algorithms B.1–B.4

The write-up trains and samples its two DDPMs with four algorithms. Each box is set beside the
code of this repository that carries it out (below it on a narrow screen), as this build runs it,
with the file's own line numbers; the link above each listing opens its module's code page. The
values under each box are this build's `{ctx.profile}` recipe. Sampling runs Part A's loop,
`sampling.iterative_denoise`, on every one of the T steps with the variance \\(\\sigma_t^2 = \\beta_t\\),
which makes its step `schedule.step` the update of B.2 and B.4.
""")
page.text(algorithm_markdown(
    Algorithm("B.1", "Training the time-conditioned UNet", (
        (0, "**repeat**"),
        (1, r"\(x_0 \thicksim\) a batch of clean training digits"),
        (1, uniform_t),
        (1, gaussian),
        (1, forward),
        (1, r"take a gradient step on \(\nabla_\theta \lVert \epsilon - \epsilon_\theta(x_t, t/T) \rVert^2\)"),
        (0, f"**until** {time_recipe.epochs} epochs are done"),
    ), note=f"\\(T = {time_recipe.num_timesteps}\\), " + schedule.format(time_recipe.beta1, time_recipe.beta2)
       + f"; batches of {time_recipe.batch_size}; {optimizer_text(time_recipe)}."),
    ["diffusion_lab.mnist.ddpm.draw_ddpm_batch", "diffusion_lab.mnist.ddpm.ddpm_loss_from"], PATH,
    see_also=["diffusion_lab.mnist.ddpm.time_conditioned_loss", "diffusion_lab.mnist.train_step.TrainStep",
              "diffusion_lab.mnist.training.fit", "diffusion_lab.mnist.ddpm.q_sample"],
))
page.text(algorithm_markdown(
    Algorithm("B.2", "Sampling from the time-conditioned UNet", (
        (0, r"\(x_T \thicksim \mathcal{N}(0, I)\)"),
        (0, r"**for** \(t = T, \ldots, 1\) **do**"),
        (1, noise),
        (1, r"\(\hat\epsilon = \epsilon_\theta(x_t, t/T)\)"),
        (1, x0_hat),
        (1, reverse),
        (0, "**end for**"),
        (0, r"**return** \(x_0\)"),
    ), note=f"\\(T = {time_recipe.num_timesteps}\\): as many network evaluations per sample."),
    ["diffusion_lab.sampling.iterative_denoise", "diffusion_lab.schedule.step"], PATH,
    see_also=["diffusion_lab.experiments.partb_sampling.partb_noise_model", "diffusion_lab.sampling.sample",
              "diffusion_lab.schedule.step_coefficients"],
))
page.text(algorithm_markdown(
    Algorithm("B.3", "Training the class-conditioned UNet", (
        (0, "**repeat**"),
        (1, r"\(x_0, y \thicksim\) a batch of clean training digits and their labels"),
        (1, r"\(c = \operatorname{onehot}(y)\)"),
        (1, r"\(c = 0\) with probability \(p_\text{uncond}\)"),
        (1, uniform_t),
        (1, gaussian),
        (1, forward),
        (1, r"take a gradient step on \(\nabla_\theta \lVert \epsilon - \epsilon_\theta(x_t, t/T, c) \rVert^2\)"),
        (0, f"**until** {class_recipe.epochs} epochs are done"),
    ), note=f"\\(p_\\text{{uncond}} = {class_recipe.p_uncond:g}\\), \\(T = {class_recipe.num_timesteps}\\), "
       + schedule.format(class_recipe.beta1, class_recipe.beta2)
       + f"; batches of {class_recipe.batch_size}; {optimizer_text(class_recipe)}"
       + ("; the weights start from the trained time-conditioned UNet's." if class_recipe.warm_start else ".")),
    ["diffusion_lab.mnist.ddpm.draw_ddpm_batch", "diffusion_lab.mnist.ddpm.ddpm_loss_from"], PATH,
    see_also=["diffusion_lab.mnist.ddpm.class_conditioned_loss", "diffusion_lab.mnist.class_dropout.dropped_one_hot",
              "diffusion_lab.mnist.train_step.TrainStep", "diffusion_lab.mnist.training.fit"],
))
page.text(algorithm_markdown(
    Algorithm("B.4", "Sampling from the class-conditioned UNet with classifier-free guidance", (
        (0, r"\(x_T \thicksim \mathcal{N}(0, I)\), \(c = \operatorname{onehot}(y)\) for the digit \(y\) wanted"),
        (0, r"**for** \(t = T, \ldots, 1\) **do**"),
        (1, noise),
        (1, r"\(\epsilon_u = \epsilon_\theta(x_t, t/T, 0)\), \(\epsilon_c = \epsilon_\theta(x_t, t/T, c)\)"),
        (1, r"\(\hat\epsilon = \epsilon_u + \gamma\,(\epsilon_c - \epsilon_u)\)"),
        (1, x0_hat),
        (1, reverse),
        (0, "**end for**"),
        (0, r"**return** \(x_0\)"),
    ), note=f"\\(\\gamma = {COURSE_GUIDANCE:g}\\) (the course's; the write-up says {WRITE_UP_GUIDANCE:g}), "
       f"\\(T = {class_recipe.num_timesteps}\\): {2 * class_recipe.num_timesteps} network evaluations per sample."),
    ["diffusion_lab.sampling.guided_estimate", "diffusion_lab.sampling.cfg"], PATH,
    see_also=["diffusion_lab.experiments.partb_sampling.sample_digits", "diffusion_lab.sampling.iterative_denoise",
              "diffusion_lab.schedule.step"],
))
page.save()
