"""Part B: the DDPM of B2/B3 against the flow matching of B4, at equal training compute."""

from diffusion_lab.experiments import judge_training, partb, partb_compare, partb_training
from diffusion_lab.experiments.partb_records import Comparison
from diffusion_lab.profiles import QUALITY_BAR
from diffusion_lab.report.flow_figures import (
    COMPUTE_HEADERS, comparison_findings, comparison_grid, comparison_headers, comparison_plot, comparison_rows,
    compute_rows, guidance_words, started_from,
)
from diffusion_lab.report.gallery import headline
from diffusion_lab.report.page import Page
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
page = Page("part-b/ddpm-vs-flow.md", "B5. DDPM or flow matching?", ctx, section="Part B: diffusion from scratch")

time_ddpm = partb_training.ddpm_training(ctx, conditional=False)
class_ddpm = partb_training.ddpm_training(ctx, conditional=True)
time_flow = partb_training.flow_training(ctx, conditional=False)
class_flow = partb_training.flow_training(ctx, conditional=True)


page.text("""
Both versions of the course's Part B train the same UNets on MNIST; one regresses the noise of a DDPM
(B2, B3), the other the velocity of a straight path (B4). Here each pair is trained at equal compute
(the same width, batch, learning-rate schedule, precision and number of images seen, read from the
training runs below; where each loss looks hardest is its own) and sampled with a growing number of network evaluations per sample: the DDPM
with Part A's strided loop on that many of its timesteps, flow matching with that many Euler steps or
half as many Heun steps (two evaluations each). A guided step evaluates the conditional and
unconditional halves in one batched network call, and counts once, for both models alike.
""")
page.table(
    COMPUTE_HEADERS,
    compute_rows({
        "time-conditioned DDPM": (time_ddpm, []),
        "time-conditioned flow": (time_flow, []),
        "class-conditioned DDPM": (class_ddpm, started_from(class_ddpm, time_ddpm)),
        "class-conditioned flow": (class_flow, started_from(class_flow, time_flow)),
    }),
    "What each model was trained with; a class model's images and wall time include those of the "
    "time-conditioned model it starts from.",
    [time_ddpm, time_flow, class_ddpm, class_flow],
)

judged = judge_training.judge_training(ctx)
reference = partb.judge_reference(ctx)
for conditional, title, ddpm, flow in ((False, "Unconditional samples", time_ddpm, time_flow),
                                        (True, "Class-conditioned samples", class_ddpm, class_flow)):
    run = partb_compare.comparison(ctx, conditional)
    compared = Comparison.of(run)
    runs = [ddpm, flow, judged, reference, run]
    per = f"{run.params['samples'] // 10:,} of each digit" if conditional else f"{run.params['samples']:,} samples"
    seeds = run.params["seeds"]
    page.text(f"""
## {title}

Each point: {per}{guidance_words(run)}, {seeds} sampling seed{'s' if seeds > 1 else ''}; the Fréchet distance is in
units of as many real training digits' ({compared.frechet_floor:.2f}).

{comparison_findings(run, conditional, QUALITY_BAR)}
""")
    page.figure(comparison_plot(run, conditional),
                f"{title}: what the judge reads against network evaluations per sample (log scale).", runs)
    headline(page)
    page.table(comparison_headers(conditional), comparison_rows(run, conditional),
               f"{title}: every measured point (means over the sampling seeds). Heun takes two evaluations a step, "
               f"so it has no odd counts; the DDPM takes at most its T = {compared.num_timesteps} steps.", runs)
    page.figure(comparison_grid(run),
                f"{title}: the first samples of each sampler at {', '.join(map(str, run.params['grid']))} network "
                "evaluations per sample" + (" (one of each digit)." if conditional else "."),
                runs)
page.save()
