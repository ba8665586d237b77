"""Part B, section 1: the single-step denoiser (B1.1 to B1.3)."""

from diffusion_lab.experiments import partb, partb_training
from diffusion_lab.experiments.partb_noising import noising_run
from diffusion_lab.experiments.partb_records import TrainingSummary
from diffusion_lab.report.figures import image_grid, image_row
from diffusion_lab.report.gallery import headline
from diffusion_lab.report.page import Page
from diffusion_lab.report.partb_figures import (
    DENOISER_TABLE_HEADERS,
    TRAINING_COST_HEADERS,
    checkpoint_labels_text,
    denoiser_table_rows,
    denoising_grid,
    last_checkpoint_label,
    loss_curve,
    training_cost_rows,
    training_digit_count,
)
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
recipe = ctx.recipes.partb.denoiser
page = Page("part-b/single-step-denoiser.md", "B1. Training a single-step denoiser", ctx,
            section="Part B: diffusion from scratch")

page.text(r"""
We noise a clean MNIST digit \(x \in [0, 1]\) as \(z = x + \sigma \epsilon\), \(\epsilon \sim \mathcal{N}(0, I)\),
and train a UNet \(D_\theta\) to undo it with the L2 loss \(\lVert D_\theta(z) - x \rVert^2\).

## B1.1 The noising process
""")
noising = noising_run(ctx)
noised = noising.load("noisy.pt")
sigmas = noising.params["sigmas"]
page.figure(
    image_row(noised["noisy"], titles=[f"σ = {s}" for s in sigmas]),
    f"The noising process on MNIST test digit #{noising.params['digit_index']} (a {noised['label']}): "
    f"the same ε scaled by each σ. Values outside [0, 1] are clipped for display.",
    noising,
)

trained = partb_training.denoiser_training(ctx)
results = partb.denoiser_results(ctx)
stored = results.load("results.pt")

page.text(f"""
## B1.2 Training

The unconditional UNet of the write-up (ConvBlock, two DownBlocks, Flatten/Unflatten, two
UpBlocks with skip connections) with D = {recipe.num_hiddens} hidden channels has
**{TrainingSummary.of(trained).num_parameters:,} parameters**. Recipe of this build (`{ctx.profile}`):
σ = {recipe.sigma}, batch {recipe.batch_size}, {recipe.epochs} epochs, Adam at {recipe.learning_rate:g},
{training_digit_count(recipe):,} training digits, {TrainingSummary.of(trained).precision} precision.
The write-up's recipe is D = 128, batch 256, 5 epochs, Adam 1e-4 (the `full` profile).
""")
loss_curve(page, trained, "Training loss of the single-step denoiser.")

page.figure(
    denoising_grid(trained, results, recipe.sigma),
    "Test digits (not seen in training), noised at σ = 0.5 and denoised by the model after each kept epoch: "
    + checkpoint_labels_text(trained) + ".",
    [trained, results],
)
headline(page)

page.text("""
## B1.3 Out-of-distribution test

The denoiser was trained at σ = 0.5 only. Here one test digit is noised at every σ of B1.1.
""")
ood_sigmas = results.params["ood_sigmas"]
page.figure(
    image_grid([list(stored["ood_noisy"]), list(stored["ood_denoised"])],
               col_titles=[f"σ = {s}" for s in ood_sigmas], row_titles=["noisy", "denoised"], cell_inches=1.0),
    "One test digit noised at σ ∈ {" + ", ".join(str(s) for s in ood_sigmas) + "} (top) and the denoiser's output "
    f"(bottom, {last_checkpoint_label(trained)}).",
    [trained, results],
)

page.table(
    DENOISER_TABLE_HEADERS,
    denoiser_table_rows(results),
    f"The denoiser against the best Gaussian blur, on {results.params['showcase']['metric_images']} test digits "
    "per σ (mean over images; outputs clipped to [0, 1]). The blur's kernel and σ are chosen per noise level by "
    "best mean PSNR against the clean digits, an oracle choice that favours the baseline.",
    [trained, results],
)
page.table(TRAINING_COST_HEADERS, training_cost_rows({"single-step denoiser": trained}),
           "What training the denoiser cost on this build's device.", trained)
page.save()
