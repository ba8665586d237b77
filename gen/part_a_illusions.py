"""Part A, sections 1.8 and 1.9: visual anagrams and hybrid images, every candidate shown and judged."""

from diffusion_lab.experiments import parta, parta_illusions
from diffusion_lab.experiments.parta_backend import backend_for
from diffusion_lab.experiments.parta_plan import plan_for
from diffusion_lab.experiments.parta_upsample import figure_upsample
from diffusion_lab.report.figures import image_grid
from diffusion_lab.report.illusion_figures import (
    HYBRID_TABLE_HEADERS,
    JUDGE_TITLES_NOTE,
    anagram_name,
    anagram_view_names,
    candidate_number,
    candidate_titles,
    candidate_total,
    far_reading_count,
    hybrid_name,
    hybrid_sweep_grid,
    hybrid_sweep_headers,
    hybrid_sweep_rows,
    hybrid_table_rows,
    judge_headers,
    judge_rows,
    picked_candidate,
    picked_candidate_caption,
    sweep_view_counts,
    sweep_works_at,
    verdict,
    view_statistics_rows,
    view_statistics_text,
    VIEW_STATISTICS_HEADERS,
    working_count,
)
from diffusion_lab.report.gallery import headline
from diffusion_lab.report.page import Page
from diffusion_lab.report.parta_figures import (
    SECTION,
    VIEW_NAMES,
    Stage2Figures,
    existing_runs,
    only_if,
    percent,
    quoted,
    value_range,
)
from diffusion_lab.runcache.context import BuildContext

ctx = BuildContext.from_env()
plan = plan_for(ctx.backend)
backend = backend_for(ctx)
page = Page("part-a/illusions.md", "A3. Visual anagrams and hybrid images", ctx, section=SECTION,
            backend_label=backend.label)
model_runs = existing_runs(*backend.runs, parta.judge_for(ctx, plan))
stage2 = Stage2Figures(page, backend, model_runs)
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
closest one: its "works" is an upper bound, and the pictures are the evidence.
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
handwritten 6 into a 9. Views used here: {anagram_view_names(plan.anagrams)}. Beyond the write-up's flip, the fall 2025
course asks for views from the Visual Anagrams paper's set: negation flips the sign of every pixel, and the
patch view moves the tiles of a fixed grid to fixed new places.
""")
anagram_runs, anagram_names = [], []
for spec in plan.anagrams:
    run = parta_illusions.anagram(ctx, plan, backend, spec)
    stored = run.load("anagram.pt")
    view = VIEW_NAMES[spec.view]
    name = anagram_name(spec)
    anagram_runs.append(run)
    anagram_names.append(name)
    best = picked_candidate(run)
    page.text(f"### {name}")
    page.figure(
        image_grid([[stored["images"][best], stored["viewed"][best]]],
                   col_titles=[quoted(spec.prompt_1), f"{quoted(spec.prompt_2)}\n({view})"],
                   value_range=value_range(run), cell_inches=2.2),
        f"{picked_candidate_caption(run)}: as generated, and {view}. Verdict: {verdict(run)}.",
        [*model_runs, run],
    )
    headline(page)
    stage2.add(run, figure_upsample(ctx, backend, run, [stored["images"][best]], [plan.generic_prompt], spec.view),
               [quoted(spec.prompt_1)],
               f"{candidate_number(run)}.{stage2_prompt_note} Its second row is the upsampled image {view}")
    page.figure(
        image_grid([list(stored["images"]), list(stored["viewed"])], col_titles=candidate_titles(run, (0, 1)),
                   row_titles=["as is", view], value_range=value_range(run), cell_inches=1.2),
        f"All {n} candidates: top row as generated (should read {quoted(spec.prompt_1)}), bottom row {view} "
        f"(should read {quoted(spec.prompt_2)}). " + only_if(plan.judge, JUDGE_TITLES_NOTE),
        [*model_runs, run],
    )
if plan.judge:
    page.table(judge_headers("as is", "through the view"), judge_rows(anagram_runs, anagram_names),
               f"The judge's verdict on each anagram over its {n} candidates: a candidate works when the judge "
               "reads the first digit as it is and the second through the view.",
               [*model_runs, *anagram_runs])
    working = working_count(anagram_runs)
    page.text(f"By the judge, {working} of {len(anagram_runs)} anagrams have at least one candidate of {n} that "
              "reads as intended both ways.")

view_stats = parta_illusions.view_statistics(ctx, plan, backend)
page.text(rf"""
### Which maps can be views

The second estimate is made on \(v(x_t)\), so \(v\) must send a noisy image to a noisy image: an orthogonal
map of the pixels (a permutation, a sign flip) sends \(\mathcal N(0, I)\) noise to \(\mathcal N(0, I)\)
noise (the Visual Anagrams paper's rule). {view_statistics_text(view_stats)}
""")
page.table(VIEW_STATISTICS_HEADERS, view_statistics_rows(view_stats),
           "Each view of this page and the blur counterexample, measured on noise drawn for this build.",
           [view_stats])

# --- 1.9 --------------------------------------------------------------------------------------
scaling = parta_illusions.hybrid_kernel_scaling(ctx, plan, backend)
split = scaling.load("split.pt")
(k64, s64), (k, s), size = scaling.metrics["write_up_kernel"], scaling.metrics["scaled_kernel"], scaling.metrics["size"]
kept = scaling.metrics["lowpass_similarity"]
sweep = parta_illusions.hybrid_sweep(ctx, plan, backend)
page.text(rf"""
## 1.9 Hybrid images

One image that shows one prompt from afar and another up close (Factorized Diffusion):
\(\epsilon = \text{{lowpass}}(\epsilon_{{far}}) + \text{{highpass}}(\epsilon_{{near}})\),
with highpass = identity − lowpass.
The write-up's low-pass is a Gaussian of kernel {k64} and σ = {s64:g} on a 64×64 image: σ is
{percent(s64, 64)} of the image's width. Scaled to a {size}×{size} image, the same fraction is σ = {s:g}
(kernel {k}; `illusions.hybrid_kernel`). The figures show what each split does to a digit. How much of the
picture the low-pass keeps, as the correlation r of low-pass and picture (1: all of it): the photo with the
write-up's kernel {kept[0]:.2f}; the {size}×{size} test digit with the scaled kernel {kept[1]:.2f}, with the
write-up's unscaled one {kept[2]:.2f}.
""")
page.figure(
    image_grid([[split["kernels"]["write_up"], split["kernels"]["scaled"], split["kernels"]["unscaled"]]],
               col_titles=[f"kernel {k64}, σ={s64:g}\nin a 64×64 frame",
                           f"kernel {k}, σ={s:g}\nin a {size}×{size} frame",
                           f"kernel {k64}, σ={s64:g}\nin a {size}×{size} frame"],
               cell_inches=1.8),
    "The low-pass's response to a single bright pixel, drawn at its footprint in the image: the write-up's "
    f"kernel on IF's 64×64 images, the scaled kernel on {size}×{size} images, and the unscaled one on "
    f"{size}×{size}, where its σ is {percent(s64, size)} of the image's width ({percent(s64, 64)} on 64×64).",
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
    scaling,
)

if sweep is not None:
    k_sweep = sweep.params["candidates"]
    page.text(f"""
### Choosing the low-pass on {size}×{size} digits

Scaling the kernel with the image keeps the split at the same fraction of the picture, but what makes a digit
a 1 or a 7 is not at the same scale as what makes a photo a skull or a waterfall. So each hybrid is first
sampled at every low-pass of a sweep, σ = {", ".join(f"{p['sigma']:g}" for p in sweep.params["sweep"])} (kernel
in the write-up's proportion, 8 σ either side, capped by the image), {k_sweep} seeds each, the same seeds for
every σ.
""")
    for pair, spec in enumerate(plan.hybrids):
        page.figure(
            hybrid_sweep_grid(sweep, pair),
            f"The sweep for {hybrid_name(spec)}: one row per low-pass, its {k_sweep} candidates up close (should read "
            f"{quoted(spec.near)}) and then from afar, as their low-pass (should read {quoted(spec.far)})."
            + only_if(plan.judge, " Each row says how many candidates the judge reads as both digits; ★ marks the "
                                  "setting picked for the figures below."),
            [*model_runs, sweep],
        )
    if plan.judge:
        scaled_works, scaled_total = sweep_works_at(sweep, s)
        write_up_works, write_up_total = sweep_works_at(sweep, s64)
        page.table(
            hybrid_sweep_headers(sweep),
            hybrid_sweep_rows(sweep),
            f"The judge on the sweep: per hybrid, how many of the {k_sweep} candidates work (low-pass reads the far "
            "digit and the image the near one), and how often each view alone reads as intended. ★: the setting "
            "picked for the hybrid.",
            [*model_runs, sweep],
        )
        scaled_far, scaled_near, _ = sweep_view_counts(sweep, s)
        write_up_far, write_up_near, _ = sweep_view_counts(sweep, s64)
        page.text(
            f"With the scaled kernel (σ = {s:g}), {scaled_works} of {scaled_total} candidates work: the judge reads "
            f"the far digit from afar in {scaled_far} and the near digit up close in {scaled_near}. With the "
            f"write-up's unscaled one (σ = {s64:g}), {write_up_works} of {write_up_total} work: the far digit from "
            f"afar in {write_up_far}, the near one up close in {write_up_near}. The figures below use, for each "
            f"hybrid, the setting the judge picked from the sweep: {parta_illusions.HYBRID_SELECTION_RULE}."
        )

hybrid_runs, hybrid_names = [], []
for spec in plan.hybrids:
    run = parta_illusions.hybrid(ctx, plan, backend, spec)
    stored = run.load("hybrid.pt")
    name = hybrid_name(spec)
    hybrid_runs.append(run)
    hybrid_names.append(name)
    best = picked_candidate(run)
    page.text(f"### {name}")
    setting = f"kernel {run.metrics['kernel_size']}, σ = {run.metrics['sigma']:g}"
    page.figure(
        image_grid([[stored["images"][best], stored["lowpass"][best]]],
                   col_titles=[f"{quoted(spec.near)}\n(up close)", f"{quoted(spec.far)}\n(from afar: low-pass)"],
                   value_range=value_range(run), cell_inches=2.2),
        f"{picked_candidate_caption(run)}: the image, and its low-pass ({setting}"
        + (", the sweep's pick" if sweep is not None and plan.judge else "")
        + f") as a stand-in for seeing it from afar. Verdict: {verdict(run)}.",
        [*model_runs, *existing_runs(sweep), run],
    )
    stage2.add(run, figure_upsample(ctx, backend, run, [stored["images"][best]], [plan.generic_prompt]),
               [f"{quoted(spec.near)} (up close)"],
               f"{candidate_number(run)}.{stage2_prompt_note} Seen from afar it should read {quoted(spec.far)}")
    page.figure(
        image_grid([list(stored["images"]), list(stored["lowpass"]), list(stored["highpass_shown"])],
                   col_titles=candidate_titles(run, (1, 0)), row_titles=["image", "low-pass", "high-pass"],
                   value_range=value_range(run), cell_inches=1.2),
        f"All {n} candidates ({setting}): the image (up close, should read {quoted(spec.near)}), its low-pass "
        f"(from afar, should read {quoted(spec.far)}) and its high-pass around mid-gray. "
        + only_if(plan.judge, JUDGE_TITLES_NOTE),
        [*model_runs, *existing_runs(sweep), run],
    )
if plan.judge:
    page.table(HYBRID_TABLE_HEADERS, hybrid_table_rows(hybrid_runs, hybrid_names),
               f"The hybrids of the figures above: the low-pass each was sampled with and how many of its {n} "
               "candidates work (the judge reads the far digit in the low-pass and the near digit in the image).",
               [*model_runs, *existing_runs(sweep), *hybrid_runs])
    page.table(judge_headers("from afar (low-pass)", "up close (image)"), judge_rows(hybrid_runs, hybrid_names),
               f"The judge's verdict on each hybrid over its {n} candidates, in detail.",
               [*model_runs, *hybrid_runs])
    page.text(f"By the judge, {working_count(hybrid_runs)} of {len(hybrid_runs)} hybrids have at least one candidate "
              f"of {n} that works; in {far_reading_count(hybrid_runs)} of {candidate_total(hybrid_runs)} candidates "
              "the image itself, seen up close, reads as the *far* digit.")
page.save()
