"""Part A, sections 1.1 to 1.6: forward process, blur baseline, one-step and iterative denoising,
sampling, classifier-free guidance."""

from diffusion_lab.experiments import parta
from diffusion_lab.experiments.parta_backend import backend_for
from diffusion_lab.experiments.parta_plan import plan_for
from diffusion_lab.experiments.parta_upsample import figure_upsample
from diffusion_lab.report.figures import image_grid
from diffusion_lab.report.gallery import headline
from diffusion_lab.report.page import Page
from diffusion_lab.report.parta_figures import (
    BLUR_TABLE_HEADERS,
    SECTION,
    Stage2Figures,
    blur_grid,
    blur_table_rows,
    cfg_sample_names,
    described,
    existing_runs,
    forward_grid,
    judged_titles,
    only_if,
    quoted,
    sample_names,
    value_range,
)
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
plan = plan_for(ctx.backend)
backend = backend_for(ctx)
page = Page("part-a/sampling-loops.md", "A1. Sampling loops", ctx, section=SECTION, backend_label=backend.label)
model_runs = backend.runs
stage2 = Stage2Figures(page, backend, model_runs)
judge_runs = existing_runs(parta.judge_for(ctx, plan))
steps = backend.timesteps

page.text(f"""
The write-up writes its own sampling loops around DeepFloyd IF. Here every loop is written once
against a small noise-model interface and drawn by this build's backend: **{backend.label}**.
Each figure's provenance names the runs behind it, the model's included.

The loops run over the backend's strided timesteps: **{len(steps)} steps {steps[0]}, {steps[1]}, ...,
{steps[-1]}** (DeepFloyd IF: 990, 960, ..., 0, stride 30 over its 1000 training steps; this
model's list is {len(steps)} steps over its {len(backend.alphas_cumprod)}).
{plan.generic_prompt_note}
[A0](stock-pipeline.md) shows what the stock sampler draws before any loop of ours.
""")

# --- 1.1 --------------------------------------------------------------------------------------
forward = parta.forward_process(ctx, plan, backend)
clean_label = described(plan.test_image.label, forward.metrics["image_info"])
page.text(r"""
## 1.1 Implementing the forward process

A clean image is scaled down and mixed with Gaussian noise:
\(x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon\), \(\epsilon \sim \mathcal N(0, I)\).
The write-up shows t = 250, 500, 750 of IF's 1000 steps; a model with T steps is shown at T/4, T/2, 3T/4.
""")
photo = None
if plan.if_schedule_photo is not None:
    photo = parta.if_schedule_photo(ctx, plan)
    page.figure(
        forward_grid(photo, cell_inches=1.8),
        f"The forward process on a real photo with DeepFloyd IF's own cosine schedule, built from its "
        f"scheduler config alone, no weights: {plan.if_schedule_photo.label}, in [-1, 1] as IF sees it.",
        photo,
    )
page.figure(
    forward_grid(forward),
    f"The forward process on {clean_label} with this model's own schedule "
    f"(T = {len(backend.alphas_cumprod)}). Pixels outside the data range are clipped for display.",
    forward,
)

# --- 1.2 --------------------------------------------------------------------------------------
grid = forward.params["blur_grid"]
page.text(f"""
## 1.2 Classical denoising

The classical baseline is a Gaussian blur. The write-up does not say which kernel; here each noisy
image gets the kernel size and sigma whose blur is closest to the clean image in PSNR, from a grid of
{len(grid["kernel_sizes"])} sizes ({", ".join(map(str, grid["kernel_sizes"]))}) × {len(grid["sigmas"])} sigmas
({", ".join(f"{sigma:g}" for sigma in grid["sigmas"])}): an oracle choice, since it looks at the clean image, and
the best blur of that grid, not of every Gaussian blur.
""")
if photo is not None:
    page.figure(blur_grid(photo, cell_inches=1.8),
                "Gaussian blur of the three noisy photos above (IF's schedule), each with its best kernel.", photo)
page.figure(blur_grid(forward, cell_inches=1.4),
            f"Gaussian blur of the three noisy images of {clean_label}, each with its best kernel.",
            forward)
page.table(
    BLUR_TABLE_HEADERS,
    blur_table_rows({"photo, IF schedule": photo, clean_label: forward}),
    "The blur chosen for each noise level and what it gains, in PSNR against the clean image.",
    existing_runs(photo, forward),
)

# --- 1.3 --------------------------------------------------------------------------------------
single = parta.one_step(ctx, plan, backend, forward)
estimates = single.load("one_step.pt")["estimates"]
page.text(rf"""
## 1.3 One-step denoising

The model estimates the noise once, conditioned on the prompt {quoted(plan.generic_prompt)}, and the clean
image follows from the forward equation:
\(\hat x_0 = (x_t - \sqrt{{1-\bar\alpha_t}}\,\hat\epsilon) / \sqrt{{\bar\alpha_t}}\).
""")
rows = forward.metrics["rows"]
noisy = forward.load("forward.pt")
page.figure(
    image_grid(
        [[noisy["clean"]] + [noisy["noisy"][r["t"]] for r in rows], [None] + [estimates[r["t"]] for r in rows]],
        col_titles=["Original Image"] + [f"Noise Level {r['t']}" for r in rows],
        row_titles=["noisy", "one-step\ndenoised"],
        value_range=value_range(single),
    ),
    f"One-step denoising of the noisy images of 1.1 ({clean_label}).",
    [*model_runs, forward, single],
)

# --- 1.4 --------------------------------------------------------------------------------------
iterative = parta.iterative(ctx, plan, backend)
stored = iterative.load("iterative.pt")
m = iterative.metrics
page.text(rf"""
## 1.4 Iterative denoising

From \(x_t\) at \(t\) to the next strided timestep \(t'\), with \(a_t = \bar\alpha_t/\bar\alpha_{{t'}}\)
and \(b_t = 1 - a_t\):
\(x_{{t'}} = \frac{{\sqrt{{\bar\alpha_{{t'}}}}\,b_t}}{{1-\bar\alpha_t}}\hat x_0
+ \frac{{\sqrt{{a_t}}(1-\bar\alpha_{{t'}})}}{{1-\bar\alpha_t}}x_t + \sigma_t z\): for a model that predicts no
variance (the MNIST UNet) \(\sigma_t^2 = \frac{{1-\bar\alpha_{{t'}}}}{{1-\bar\alpha_t}}b_t\), the posterior
variance; IF interpolates between that and \(b_t\) with its learned variance.
The test image is noised to timesteps[{plan.iterative_i_start}] = {m['t_start']} and denoised from there,
with the prompt {quoted(plan.generic_prompt)}.
""")
page.figure(
    image_grid([stored["frames"]], col_titles=[f"Noise Level {t}" for t in m["frame_timesteps"]],
               value_range=value_range(iterative)),
    f"The image every {plan.frame_every}th step of the loop, from timesteps[{plan.iterative_i_start}] = "
    f"{m['t_start']} on (IF: 690, 540, 390, 240, 90).",
    [*model_runs, iterative],
)
page.figure(
    image_grid([[stored["clean"], stored["iterative"], stored["one_step"], stored["blurred"]]],
               col_titles=["Original Image", "Iteratively\nDenoised", "One-Step\nDenoised",
                           f"Gaussian Blurred\nk={m['blur']['kernel_size']}, σ={m['blur']['sigma']:g}"],
               value_range=value_range(iterative), cell_inches=1.5),
    f"The same noisy image (t = {m['t_start']}, ᾱ = {float(backend.alphas_cumprod[m['t_start']]):.2f}) denoised "
    f"three ways: the iterative loop, one step of the model, and the best Gaussian blur of the grid. With the "
    f"prompt {quoted(plan.generic_prompt)} nothing tells the loop which picture it started from. How much of "
    f"the original each keeps, as the correlation r of its pixels with the original's (1: the same picture): "
    f"iterative {m['similarity']['iterative']:.2f}, one step {m['similarity']['one_step']:.2f}, "
    f"blur {m['similarity']['blurred']:.2f}.",
    [*model_runs, iterative],
)
stage2.add(iterative, figure_upsample(ctx, backend, iterative, [stored["iterative"]], [plan.generic_prompt]),
           ["Iteratively Denoised"], f"The iteratively denoised image (t = {m['t_start']})")

# --- 1.5, 1.6 ---------------------------------------------------------------------------------
samples = parta.unconditional_samples(ctx, plan, backend)
images = samples.load("samples.pt")["samples"]
page.text(f"""
## 1.5 Diffusion model sampling

Iterative denoising from pure noise (i_start = 0), prompt {quoted(plan.generic_prompt)}, no guidance.
""" + only_if(plan.judge,
              " Under each sample: the digit Part B's judge classifier reads in it, and its probability."))
page.figure(
    image_grid([list(images)], col_titles=judged_titles(samples, sample_names(samples)),
               value_range=value_range(samples)),
    f"{plan.num_samples} samples from pure noise with the prompt {quoted(plan.generic_prompt)}.",
    [*model_runs, *judge_runs, samples],
)
stage2.add(samples, figure_upsample(ctx, backend, samples, images, samples.params["prompts"]),
           sample_names(samples), "The samples of 1.5")

guided = parta.cfg_samples(ctx, plan, backend)
images = guided.load("samples.pt")["samples"]
page.text(rf"""
## 1.6 Classifier-free guidance (CFG)

Each step evaluates the conditional and the unconditional (prompt "") estimates and extrapolates:
\(\epsilon = \epsilon_u + g\,(\epsilon_c - \epsilon_u)\). {plan.guidance_note}
""")
page.figure(
    image_grid([list(images)], col_titles=judged_titles(guided, cfg_sample_names(guided)),
               value_range=value_range(guided), cell_inches=1.6),
    f"{plan.num_samples} samples with CFG at g = {plan.guidance:g}, one per prompt.",
    [*model_runs, *judge_runs, guided],
)
headline(page)
stage2.add(guided, figure_upsample(ctx, backend, guided, images, guided.params["prompts"]),
           sample_names(guided), "The CFG samples of 1.6")
page.save()
