"""Part A, Try it: the reader draws a digit and runs SDEdit, inpainting, guided sampling and the 6/9
anagram in the browser, on the class-conditioned MNIST DDPM exported to ONNX."""

from diffusion_lab.experiments.parta_onnx import onnx_export
from diffusion_lab.report.page import Page
from diffusion_lab.report.parta_figures import SECTION
from diffusion_lab.report.try_it import (
    EQUALITY_TEST,
    PAGE,
    demo_markdown,
    equality_test_source,
    find_runtime,
    load_size_caption,
    load_size_rows,
    megabytes,
    network_precision,
    save_assets,
)
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
run = onnx_export(ctx)
runtime = find_runtime()
size = save_assets(run, runtime)
steps = run.params["timesteps"]
page = Page(PAGE, "A4. Try it in your browser", ctx, section=SECTION,
            backend_label=f"MNIST class-conditioned DDPM trained in Part B (`{ctx.profile}` profile)")

page.text(f"""
Draw a digit and run Part A's loops on it here, in your browser, with nothing computed on a server
(the page must be served over http, e.g. by `make serve`, not opened as a file): SDEdit, inpainting,
sampling with classifier-free guidance and the 6/9 anagram. The model is this build's
**class-conditioned MNIST DDPM** (Part B, `{ctx.profile}` profile: {ctx.recipes.purpose};
training run `{run.params['training'][:12]}`), BatchNorm folded into its convolutions and exported to
ONNX (opset {run.params['opset']}, onnx {run.params['onnx']}, {megabytes(run.metrics['model_bytes'])}) by
the run `{run.name}` (key `{run.key[:12]}`), whatever backend drew the other Part A pages.
[onnxruntime-web](https://onnxruntime.ai/docs/tutorials/web/) {run.params['onnxruntime_web']} runs it on one WASM thread
in a Web Worker, so the page stays responsive; the loop around it is `diffusion_loop.mjs`, the
JavaScript twin of `schedule.step`, `sampling`, `editing` and `illusions`, on the same
{len(steps)} strided timesteps {steps[0]}, {steps[1]}, ..., {steps[-1]}, with the fixed posterior variance.
""")

page.text(demo_markdown(runtime, PAGE))

page.text(f"""
**How to use it.** Draw with the pen (white on black, like MNIST), or load one of the site's inputs.
*Sample a digit* starts from pure noise with the prompt and guidance g. *SDEdit* noises the drawing to
timesteps[i_start] and denoises it with the prompt: a small i_start means much noise and a free edit,
a large one stays close to the drawing. *Inpaint* regenerates what the mask brush painted (red) and keeps
the rest of the drawing. *Anagram* samples a picture that reads as the first digit as it is and as the
second rotated by 180°; the small canvas shows it rotated. Every run shows x_t before each step (scrub
with the frame slider) and then the final image.

**Seed.** A run's random draws come from the seed field's own generator (xoshiro128**), so a seed
repeats its run in any browser; it does not draw torch's numbers, so it does not reproduce the site's
figures. The browser evaluates the network in float32; the site's figures ran it in
{network_precision(ctx)}.

**Same as Python.** The JavaScript loop is held to the Python one by
[the equality test](#the-equality-test): it feeds both the same exported model, inputs and noise
(torch's draws, replayed) in each mode, and asserts that the outputs agree within 1e-4.
""")

page.table(["what the page loads", "size"], load_size_rows(size, runtime), load_size_caption(runtime), run,
           align=["---", "--:"])

page.text(f"""
## The equality test

`{EQUALITY_TEST}`, run by `make test` (the JavaScript in headless Chromium; skipped, saying why, where
Chromium or `node_modules` is missing):

{equality_test_source()}
""")
page.save()
