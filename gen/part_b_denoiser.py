"""Part B, section 1: the single-step denoiser."""

from diffusion_lab.experiments.partb_noising import noising_run
from diffusion_lab.report.context import BuildContext
from diffusion_lab.report.figures import image_row
from diffusion_lab.report.page import Page

ctx = BuildContext.from_env()
page = Page("part-b/single-step-denoiser.md", "B1. Training a single-step denoiser", ctx, section="Part B: diffusion from scratch")

page.text(r"""
We noise a clean MNIST digit \(x \in [0, 1]\) as \(z = x + \sigma \epsilon\), \(\epsilon \sim \mathcal{N}(0, I)\).

## B1.1 The noising process
""")
noising = noising_run(ctx)
result = noising.load("noisy.pt")
sigmas = noising.params["sigmas"]
page.figure(
    image_row(result["noisy"], titles=[f"σ = {s}" for s in sigmas]),
    f"The noising process on MNIST test digit #{noising.params['digit_index']} (a {result['label']}): "
    f"the same ε scaled by σ ∈ {{{', '.join(str(s) for s in sigmas)}}}. Values outside [0, 1] are clipped for display.",
    noising,
    pixelated=False,
)
page.save()
