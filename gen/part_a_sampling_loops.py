"""Part A, sections 1.1 to 1.6: forward process, blur baseline, one-step and iterative denoising,
sampling, classifier-free guidance."""

from diffusion_lab.experiments import parta
from diffusion_lab.experiments.parta_backend import backend_for
from diffusion_lab.experiments.parta_plan import plan_for
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.report.figures import image_grid
from diffusion_lab.report.page import Page
from diffusion_lab.report.parta_figures import (
    IF_SCHEDULE_LABEL,
    SECTION,
    Stage2Figures,
    backend_label,
    described,
    quoted,
    value_range,
)

ctx = BuildContext.from_env()
plan = plan_for(ctx.backend)
backend = backend_for(ctx)
page = Page("part-a/sampling-loops.md", "A1. Sampling loops", ctx, section=SECTION, backend_label=backend.label)
model_runs = backend.runs
stage2 = Stage2Figures(page, ctx, backend, model_runs)
judge_runs = [parta.judge_for(ctx, plan)] if plan.judge else []
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
if plan.if_schedule_photo is not None:
    photo = parta.if_schedule_photo(ctx, plan)
    stored = photo.load("forward.pt")
    with backend_label(page, IF_SCHEDULE_LABEL):
        page.figure(
            image_grid([[stored["clean"]] + [stored["noisy"][r["t"]] for r in photo.metrics["rows"]]],
                       col_titles=["Original Image"] + [f"Noise Level {r['t']}\n(ᾱ = {r['abar']:.2f})"
                                                        for r in photo.metrics["rows"]],
                       value_range=value_range(photo), cell_inches=1.8),
            f"The forward process on a real photo with DeepFloyd IF's own cosine schedule, built from its "
            f"scheduler config alone, no weights: {plan.if_schedule_photo.label}, in [-1, 1] as IF sees it.",
            photo,
        )
stored = forward.load("forward.pt")
rows = forward.metrics["rows"]
page.figure(
    image_grid([[stored["clean"]] + [stored["noisy"][r["t"]] for r in rows]],
               col_titles=["Original Image"] + [f"Noise Level {r['t']}\n(ᾱ = {r['abar']:.2f})" for r in rows],
               value_range=value_range(forward)),
    f"The forward process on {clean_label} with this model's own schedule "
    f"(T = {len(backend.alphas_cumprod)}). Pixels outside the data range are clipped for display.",
    forward, pixelated=True,
)

# --- 1.2 --------------------------------------------------------------------------------------
page.text("""
## 1.2 Classical denoising

The classical baseline is a Gaussian blur. The write-up does not say which kernel; here each noisy
image gets the kernel size and sigma (from a grid of 10 sizes x 8 sigmas) whose blur is closest to
the clean image in PSNR: an oracle choice, the best any Gaussian blur can do.
""")
blur_runs = ([photo] if plan.if_schedule_photo is not None else []) + [forward]
for run in blur_runs:
    stored = run.load("forward.pt")
    rows = run.metrics["rows"]
    is_photo = run.name == "parta/if-schedule-photo"
    figure = image_grid(
        [[stored["clean"]] + [stored["blurred"][r["t"]] for r in rows]],
        col_titles=["Original Image"] + [f"Blurred {r['t']}\nk={r['kernel_size']}, σ={r['sigma']:g}" for r in rows],
        value_range=value_range(run), cell_inches=1.8 if is_photo else 1.4,
    )
    caption = ("Gaussian blur of the three noisy photos above (IF's schedule), each with its best kernel."
               if is_photo else f"Gaussian blur of the three noisy images of {clean_label}, each with its best kernel.")
    if is_photo:
        with backend_label(page, IF_SCHEDULE_LABEL):
            page.figure(figure, caption, run)
    else:
        page.figure(figure, caption, run, pixelated=True)
page.table(
    ["image", "t", "ᾱ_t", "PSNR noisy (dB)", "best kernel", "best σ", "PSNR blurred (dB)"],
    [["photo, IF schedule" if run.name == "parta/if-schedule-photo" else clean_label, r["t"], f"{r['abar']:.3f}",
      f"{r['noisy_psnr']:.1f}", r["kernel_size"], f"{r['sigma']:g}", f"{r['blur_psnr']:.1f}"]
     for run in blur_runs for r in run.metrics["rows"]],
    "The blur chosen for each noise level and what it gains, in PSNR against the clean image.",
    blur_runs,
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
    [*model_runs, forward, single], pixelated=True,
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
    [*model_runs, iterative], pixelated=True,
)
page.figure(
    image_grid([[stored["clean"], stored["iterative"], stored["one_step"], stored["blurred"]]],
               col_titles=["Original Image", "Iteratively\nDenoised", "One-Step\nDenoised",
                           f"Gaussian Blurred\nk={m['blur']['kernel_size']}, σ={m['blur']['sigma']:g}"],
               value_range=value_range(iterative), cell_inches=1.5),
    f"The same noisy image (t = {m['t_start']}, ᾱ = {float(backend.alphas_cumprod[m['t_start']]):.2f}) denoised "
    f"three ways: the iterative loop, one step of the model, and the best Gaussian blur. With the prompt "
    f"{quoted(plan.generic_prompt)} nothing tells the loop which picture it started from, so at this much noise "
    "it keeps the rough layout, not necessarily the content.",
    [*model_runs, iterative], pixelated=True,
)
stage2.add(iterative, [stored["iterative"]], [plan.generic_prompt], ["Iteratively Denoised"],
           f"The iteratively denoised image (t = {m['t_start']})")

# --- 1.5, 1.6 ---------------------------------------------------------------------------------


def judged_titles(run, head):
    stored = run.load("samples.pt")
    probs = stored.get("judge_probabilities")
    titles = []
    for i, prompt in enumerate(run.params["prompts"]):
        title = head(i, prompt)
        if probs is not None:
            read = int(probs[i].argmax())
            title += f"\njudge: {read} ({probs[i, read]:.2f})"
        titles.append(title)
    return stored["samples"], titles


samples = parta.unconditional_samples(ctx, plan, backend)
images, titles = judged_titles(samples, lambda i, p: f"Sample {i + 1}")
page.text(f"""
## 1.5 Diffusion model sampling

Iterative denoising from pure noise (i_start = 0), prompt {quoted(plan.generic_prompt)}, no guidance.
""" + (" Under each sample: the digit Part B's judge classifier reads in it, and its probability."
       if plan.judge else ""))
page.figure(
    image_grid([list(images)], col_titles=titles, value_range=value_range(samples)),
    f"{plan.num_samples} samples from pure noise with the prompt {quoted(plan.generic_prompt)}.",
    [*model_runs, *judge_runs, samples], pixelated=True,
)
stage2.add(samples, images, samples.params["prompts"], [f"Sample {i + 1}" for i in range(len(images))],
           "The samples of 1.5")

guided = parta.cfg_samples(ctx, plan, backend)
images, titles = judged_titles(guided, lambda i, p: f"Sample {i + 1} with CFG\n{quoted(p)}")
page.text(rf"""
## 1.6 Classifier-free guidance (CFG)

Each step evaluates the conditional and the unconditional (prompt "") estimates and extrapolates:
\(\epsilon = \epsilon_u + g\,(\epsilon_c - \epsilon_u)\). {plan.guidance_note}
""")
page.figure(
    image_grid([list(images)], col_titles=titles, value_range=value_range(guided), cell_inches=1.6),
    f"{plan.num_samples} samples with CFG at g = {plan.guidance:g}, one per prompt.",
    [*model_runs, *judge_runs, guided], pixelated=True,
)
stage2.add(guided, images, guided.params["prompts"], [f"Sample {i + 1}" for i in range(len(images))],
           "The CFG samples of 1.6")
page.save()
