"""Part A, sections 1.8 and 1.9: visual anagrams and hybrid images, every candidate shown and judged."""

from diffusion_lab.experiments import parta, parta_illusions
from diffusion_lab.experiments.parta_backend import backend_for
from diffusion_lab.experiments.parta_plan import plan_for
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.report.figures import image_grid
from diffusion_lab.report.page import Page
from diffusion_lab.report.parta_figures import (
    JUDGE_TITLES_NOTE,
    SECTION,
    VIEW_NAMES,
    Stage2Figures,
    backend_label,
    candidate_titles,
    judge_headers,
    judge_rows,
    quoted,
    short,
    value_range,
    verdict,
    working_count,
)

ctx = BuildContext.from_env()
plan = plan_for(ctx.backend)
backend = backend_for(ctx)
page = Page("part-a/illusions.md", "A3. Visual anagrams and hybrid images", ctx, section=SECTION,
            backend_label=backend.label)
model_runs = backend.runs + ([parta.judge_for(ctx, plan)] if plan.judge else [])
stage2 = Stage2Figures(page, ctx, backend, model_runs)
stage2_prompt_note = " Stage II gets the generic prompt, not either illusion's, so that it favours neither reading."
n = plan.illusion_candidates

if plan.judge:
    how_judged = f"""
Each illusion is sampled from {n} seeds and **all {n} candidates are shown**. Part B's judge (the
project's MNIST classifier) reads every candidate in each view; above each candidate is the
probability it gives the digit each view should show, and what it reads instead when that is
another digit. The large picture is the candidate the judge rates best (★: the highest of the lower
of its two target probabilities), so it is picked, not typical: the tables say how many of the {n} work.
The judge must name one of ten digits, so on a shape that is no digit at all it still names the
closest one, often confidently: its "works" is an upper bound, and the pictures are the evidence.
"""
else:
    how_judged = f"""
Each illusion is sampled from {n} seeds and all {n} candidates are shown; there is no classifier for
this backend, so the large picture is simply candidate #1, not a pick.
"""

page.text(rf"""
Drawn by **{backend.label}**, with CFG at g = {plan.guidance:g} applied to each prompt's estimate.
{how_judged}

## 1.8 Visual anagrams

One image that shows one prompt as it is and another through a view \(v\) (upside down):
\(\epsilon = \tfrac12\big(\epsilon_1(x_t) + v^{{-1}}(\epsilon_2(v(x_t)))\big)\). The write-up's view flips
the image along its height; a rotation by 180° also mirrors it left to right, which is what turns a
handwritten 6 into a 9. Views used here: {", ".join(sorted({VIEW_NAMES[a.view] for a in plan.anagrams}))}.
""")
anagram_runs, anagram_names = [], []
for spec in plan.anagrams:
    run = parta_illusions.anagram(ctx, plan, backend, spec)
    stored = run.load("anagram.pt")
    view = VIEW_NAMES[spec.view]
    name = f"{quoted(spec.prompt_1)} / {quoted(spec.prompt_2)}, {view}"
    anagram_runs.append(run)
    anagram_names.append(name)
    best = run.metrics["judge"]["best"] if "judge" in run.metrics else 0
    page.text(f"### {name}")
    page.figure(
        image_grid([[stored["images"][best], stored["viewed"][best]]],
                   col_titles=[quoted(spec.prompt_1), f"{quoted(spec.prompt_2)}\n({view})"],
                   value_range=value_range(run), cell_inches=2.2),
        f"Candidate #{best + 1} of {n}" + (", picked by the judge" if "judge" in run.metrics else "")
        + f": as generated, and {view}. Verdict: {verdict(run)}.",
        [*model_runs, run], pixelated=True,
    )
    stage2.add(run, [stored["images"][best]], [plan.generic_prompt], [quoted(spec.prompt_1)],
               f"Candidate #{best + 1}.{stage2_prompt_note} Its second row is the upsampled image {view}",
               view=spec.view)
    page.figure(
        image_grid([list(stored["images"]), list(stored["viewed"])], col_titles=candidate_titles(run, (0, 1)),
                   row_titles=["as is", view], value_range=value_range(run), cell_inches=1.2),
        f"All {n} candidates: top row as generated (should read {quoted(spec.prompt_1)}), bottom row {view} "
        f"(should read {quoted(spec.prompt_2)}). " + (JUDGE_TITLES_NOTE if plan.judge else ""),
        [*model_runs, run], pixelated=True,
    )
if plan.judge:
    page.table(judge_headers("as is", "through the view"), judge_rows(anagram_runs, anagram_names),
               f"The judge's verdict on each anagram over its {n} candidates: a candidate works when the judge "
               "reads the first digit as it is and the second through the view.",
               [*model_runs, *anagram_runs])
    working = working_count(anagram_runs)
    page.text(f"By the judge, {working} of {len(anagram_runs)} anagrams have at least one candidate of {n} that "
              "reads as intended both ways.")

# --- 1.9 --------------------------------------------------------------------------------------
scaling = parta_illusions.hybrid_kernel_scaling(ctx, plan, backend)
split = scaling.load("split.pt")
(k64, s64), (k, s), size = scaling.metrics["write_up_kernel"], scaling.metrics["scaled_kernel"], scaling.metrics["size"]
page.text(rf"""
## 1.9 Hybrid images

One image that shows one prompt from afar and another up close (Factorized Diffusion):
\(\epsilon = \text{{lowpass}}(\epsilon_{{far}}) + \text{{highpass}}(\epsilon_{{near}})\),
with highpass = identity − lowpass.
The write-up's low-pass is a Gaussian of kernel {k64} and σ = {s64:g} on a 64×64 image: σ is
{100 * s64 / 64:.1f}% of the image's width. Scaled to a {size}×{size} image, the same fraction is σ = {s:g}
(kernel {k}; `illusions.hybrid_kernel`), which is what the hybrids below use. The figures show what each
split does to a digit: with the scaled kernel the low-pass is nearly the digit itself and the high-pass only
its edges; with the write-up's unscaled kernel the low-pass is a blur of the digit and its strokes are in the
high-pass.
""")
with backend_label(page, "none: a fixed Gaussian filter on input pictures, no model"):
    page.figure(
        image_grid([[split["kernels"]["write_up"], split["kernels"]["scaled"], split["kernels"]["unscaled"]]],
                   col_titles=[f"kernel {k64}, σ={s64:g}\nin a 64×64 frame",
                               f"kernel {k}, σ={s:g}\nin a {size}×{size} frame",
                               f"kernel {k64}, σ={s64:g}\nin a {size}×{size} frame"],
                   cell_inches=1.8),
        "The low-pass's response to a single bright pixel, drawn at its footprint in the image: the write-up's "
        f"kernel on IF's 64×64 images, the scaled kernel on {size}×{size} images, and the unscaled one on "
        f"{size}×{size}, where it covers a third of the image.",
        scaling,
    )
    page.figure(
        image_grid([[split["rows"][0]["image"], split["rows"][0]["lowpass"], split["rows"][0]["highpass_shown"]]],
                   col_titles=["image", "low-pass", "high-pass (+ mid-gray)"],
                   value_range=tuple(split["rows"][0]["data_range"]), cell_inches=1.8),
        f"The split on a {plan.photo_size}×{plan.photo_size} photo with the write-up's kernel "
        f"({split['rows'][0]['label']}).",
        scaling,
    )
    page.figure(
        image_grid([[row["image"], row["lowpass"], row["highpass_shown"]] for row in split["rows"][1:]],
                   row_titles=[f"kernel {k}\nσ={s:g}", f"kernel {k64}\nσ={s64:g}"],
                   col_titles=["image", "low-pass", "high-pass\n(+ mid-gray)"],
                   value_range=tuple(split["rows"][1]["data_range"]), cell_inches=1.7),
        f"The same split on the {size}×{size} test image: with the scaled kernel (top) and with the write-up's "
        "unscaled kernel (bottom).",
        scaling, pixelated=True,
    )

hybrid_runs, hybrid_names = [], []
for spec in plan.hybrids:
    run = parta_illusions.hybrid(ctx, plan, backend, spec)
    stored = run.load("hybrid.pt")
    name = f"far {quoted(spec.far)} / near {quoted(spec.near)}"
    hybrid_runs.append(run)
    hybrid_names.append(name)
    best = run.metrics["judge"]["best"] if "judge" in run.metrics else 0
    page.text(f"### {name}")
    page.figure(
        image_grid([[stored["images"][best], stored["lowpass"][best]]],
                   col_titles=[f"{quoted(spec.near)}\n(up close)", f"{quoted(spec.far)}\n(from afar: low-pass)"],
                   value_range=value_range(run), cell_inches=2.2),
        f"Candidate #{best + 1} of {n}" + (", picked by the judge" if "judge" in run.metrics else "")
        + f": the image, and its low-pass (kernel {run.metrics['kernel_size']}, σ = {run.metrics['sigma']:g}) "
        f"as a stand-in for seeing it from afar. Verdict: {verdict(run)}.",
        [*model_runs, run], pixelated=True,
    )
    stage2.add(run, [stored["images"][best]], [plan.generic_prompt], [f"{quoted(spec.near)} (up close)"],
               f"Candidate #{best + 1}.{stage2_prompt_note} Seen from afar it should read {quoted(spec.far)}")
    page.figure(
        image_grid([list(stored["images"]), list(stored["lowpass"]), list(stored["highpass_shown"])],
                   col_titles=candidate_titles(run, (1, 0)), row_titles=["image", "low-pass", "high-pass"],
                   value_range=value_range(run), cell_inches=1.2),
        f"All {n} candidates: the image (up close, should read {quoted(spec.near)}), its low-pass (from afar, "
        f"should read {quoted(spec.far)}) and its high-pass around mid-gray. "
        + (JUDGE_TITLES_NOTE if plan.judge else ""),
        [*model_runs, run], pixelated=True,
    )
if plan.judge:
    page.table(judge_headers("from afar (low-pass)", "up close (image)"), judge_rows(hybrid_runs, hybrid_names),
               f"The judge's verdict on each hybrid over its {n} candidates: a candidate works when the judge reads "
               "the far digit in its low-pass and the near digit in the image itself.",
               [*model_runs, *hybrid_runs])
    working = working_count(hybrid_runs)
    far_wins = sum(c["read_2"] == run.metrics["judge"]["targets"][0]
                   for run in hybrid_runs for c in run.metrics["judge"]["candidates"])
    page.text(f"By the judge, {working} of {len(hybrid_runs)} hybrids have at least one candidate of {n} that works "
              f"with the scaled kernel; in {far_wins} of {n * len(hybrid_runs)} candidates the image itself, "
              "seen up close, reads as the *far* digit.")
if plan.hybrid_sweep_sigmas:
    sweep = parta_illusions.hybrid_sigma_sweep(ctx, plan, backend)
    images = sweep.load("sweep.pt")["images"]
    k = sweep.params["candidates"]
    points = sweep.params["sweep"]
    page.text(f"""
### Where the low-pass has to cut on {size}×{size} digits

The same {len(plan.hybrids)} hybrids again at other low-pass widths, {k} seeds each, the same seeds
for every σ: σ = {s:g} is the scaled kernel used above, σ = {s64:g} the write-up's unscaled one. Scaling the
kernel with the image keeps the split at the same fraction of the picture, but what makes a digit a 1 or a 7
is not at the same scale as what makes a photo a skull or a waterfall: the sweep shows where, if anywhere,
the cut falls between the two digits.
""")
    page.figure(
        image_grid([list(images[str(point["sigma"])]) for point in points],
                   col_titles=[f"{short(h.far)} / {short(h.near)}\n#{i + 1}" for h in plan.hybrids for i in range(k)],
                   row_titles=[f"σ = {point['sigma']:g}\nkernel {point['kernel_size']}" for point in points],
                   value_range=value_range(sweep), cell_inches=0.95),
        f"Each row: the {len(plan.hybrids)} hybrids, {k} candidates each, sampled with a low-pass of that σ. "
        "Narrow low-passes hand the whole digit to the far prompt; wide ones hand it to the near prompt.",
        [*model_runs, sweep], pixelated=True,
    )
    if plan.judge:
        by_point = {(row["sigma"], row["pair"]): row for row in sweep.metrics["rows"]}
        page.table(
            ["σ (kernel)"] + [f"far {quoted(h.far)} / near {quoted(h.near)}" for h in plan.hybrids],
            [[f"{point['sigma']:g} ({point['kernel_size']})"]
             + [f"**{by_point[point['sigma'], j]['both_count']} / {k}** work; far reads far "
                f"{by_point[point['sigma'], j]['far_reads_far']}, near reads near "
                f"{by_point[point['sigma'], j]['near_reads_near']}"
                for j in range(len(plan.hybrids))]
             for point in points],
            f"The judge on the sweep: per hybrid, how many of the {k} candidates work (low-pass reads the far "
            "digit and the image the near one), and how often each view alone reads as intended.",
            [*model_runs, sweep],
        )
page.save()
