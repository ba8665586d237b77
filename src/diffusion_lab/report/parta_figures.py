"""Figures and tables shared by the Part A pages: laying out results, never computing them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from diffusion_lab.experiments.parta_backend import PartABackend
from diffusion_lab.illusions import PATCH_GRID
from diffusion_lab.experiments.parta_plan import PartAPlan
from diffusion_lab.experiments.quality import percent  # noqa: F401  (the one percent helper, for the Part A pages)
from diffusion_lab.report.figures import image_grid, line_plot
from diffusion_lab.report.page import Page
from diffusion_lab.runcache.runs import RunRecord

SECTION = "Part A: sampling loops"
VIEW_NAMES = {"flip": "flipped upside down", "rot180": "rotated 180°", "rot90": "rotated 90°", "identity": "as is",
              "negate": "negated", "patch": f"with its {PATCH_GRID} × {PATCH_GRID} patches permuted", "blur": "blurred"}


def quoted(prompt: str) -> str:
    return '"" (unconditional)' if prompt == "" else f'"{prompt}"'


def short(prompt: str) -> str:
    """A prompt's last word, for tight titles: "a handwritten 7" -> "7", "a lithograph of a skull" -> "skull"."""
    return prompt.split()[-1] if prompt.strip() else '""'


def size(images: torch.Tensor) -> str:
    """"64×64" for images shaped (..., 64, 64)."""
    return f"{images.shape[-2]}×{images.shape[-1]}"


def value_range(run: RunRecord) -> tuple[float, float]:
    low, high = run.metrics["data_range"]
    return (low, high)


def described(label: str, info: dict) -> str:
    """An input's label, with the true digit of an MNIST test image."""
    return f"{label} (a {info['label']})" if "label" in info else label


def only_if(condition: bool, text: str) -> str:
    """`text` when `condition` holds, else "": a page's optional sentence stays in the page's prose."""
    return text if condition else ""


def is_unconditional(prompt: str) -> bool:
    """Whether `prompt` is the empty prompt, for which CFG's two estimates are one and the same."""
    return prompt == ""


def plural(noun: str, count: int) -> str:
    """`noun` with an "s" unless `count` is 1 or less: "image", "images"."""
    return f"{noun}s" if count > 1 else noun


def existing_runs(*runs: RunRecord | None) -> list[RunRecord]:
    """The given runs in order, without the Nones that stand for runs this build does not make."""
    return [run for run in runs if run is not None]


# --- stage II: any figure's results at 256x256 -------------------------------------------------


@dataclass
class Stage2Figures:
    """After a figure of results, the same results upsampled by stage II: the finished upsample run
    comes from experiments.parta_upsample, which gives None when the build does not upsample."""

    page: Page
    backend: PartABackend
    model_runs: Sequence[RunRecord]

    def add(self, source: RunRecord, upsample: RunRecord | None, titles: Sequence[str], what: str) -> None:
        """A figure of the `upsample` run of `source`'s images (nothing when it is None): one row as
        upsampled, and where the run has a view, a second row seen through it."""
        if upsample is None:
            return
        stored = upsample.load("upsampled.pt")
        view, prompts = upsample.params["view"], upsample.params["prompts"]
        rows = [list(stored["images"])] + ([list(stored["viewed"])] if view else [])
        self.page.figure(
            image_grid(rows, col_titles=titles, row_titles=["as is", VIEW_NAMES[view]] if view else None,
                       value_range=value_range(upsample), cell_inches=2.4),
            f"{what}, upsampled to {size(stored['images'])} by stage II ({self.backend.stage2_label}), "
            f"conditioned on {', '.join(sorted(set(map(quoted, prompts))))}.",
            [*self.model_runs, source, upsample],
        )


# --- 1.1 to 1.6: the forward process, the blur baseline, samples ---------------------------------


def forward_grid(run: RunRecord, cell_inches: float = 1.4) -> bytes:
    """A forward-process run's clean image and its noisy versions, one column per noise level."""
    stored = run.load("forward.pt")
    rows = run.metrics["rows"]
    return image_grid([[stored["clean"]] + [stored["noisy"][r["t"]] for r in rows]],
                      col_titles=["Original Image"] + [f"Noise Level {r['t']}\n(ᾱ = {r['abar']:.2f})" for r in rows],
                      value_range=value_range(run), cell_inches=cell_inches)


def blur_grid(run: RunRecord, cell_inches: float) -> bytes:
    """A forward-process run's clean image and the best Gaussian blur of each noisy version."""
    stored = run.load("forward.pt")
    rows = run.metrics["rows"]
    return image_grid(
        [[stored["clean"]] + [stored["blurred"][r["t"]] for r in rows]],
        col_titles=["Original Image"] + [f"Blurred {r['t']}\nk={r['kernel_size']}, σ={r['sigma']:g}" for r in rows],
        value_range=value_range(run), cell_inches=cell_inches,
    )


BLUR_TABLE_HEADERS = ["image", "t", "ᾱ_t", "PSNR noisy (dB)", "best kernel", "best σ", "PSNR blurred (dB)"]


def blur_table_rows(runs_by_image: Mapping[str, RunRecord | None]) -> list[list]:
    """One row per noise level of each forward-process run (runs that are None are left out), under
    its image's name: ᾱ, the noisy image's PSNR, the best blur and its PSNR."""
    return [[image, r["t"], f"{r['abar']:.3f}", f"{r['noisy_psnr']:.1f}", r["kernel_size"], f"{r['sigma']:g}",
             f"{r['blur_psnr']:.1f}"]
            for image, run in runs_by_image.items() if run is not None for r in run.metrics["rows"]]


def sample_names(run: RunRecord) -> list[str]:
    """"Sample 1", "Sample 2", ...: one per prompt of a samples run."""
    return [f"Sample {i + 1}" for i in range(len(run.params["prompts"]))]


def cfg_sample_names(run: RunRecord) -> list[str]:
    """"Sample k with CFG" over the quoted prompt, one per prompt of a CFG samples run."""
    return [f"Sample {i + 1} with CFG\n{quoted(prompt)}" for i, prompt in enumerate(run.params["prompts"])]


def judged_titles(run: RunRecord, names: Sequence[str]) -> list[str]:
    """Each sample's name, and where the run was judged, under it the digit the judge reads and its
    probability: "Sample 1\njudge: 7 (0.93)"."""
    probabilities = run.load("samples.pt").get("judge_probabilities")
    if probabilities is None:
        return list(names)
    titles = []
    for i, name in enumerate(names):
        read = int(probabilities[i].argmax())
        titles.append(f"{name}\njudge: {read} ({probabilities[i, read]:.2f})")
    return titles


# --- 0: the stock sampler -------------------------------------------------------------------------


def capped_steps_note(run: RunRecord, num_timesteps: int) -> str:
    """A sentence naming the plan's step counts above the model's T (capped at T), or "" if none are."""
    capped = run.metrics["capped_steps"]
    if not capped:
        return ""
    return (f" The plan's {', '.join(map(str, capped))} steps exceed this model's T = "
            f"{num_timesteps} and are capped at T.")


def stock_cell_titles(run: RunRecord, per_prompt: int, count: int, first_row: bool) -> list[str]:
    """Titles of the row of stock samples at `count` steps: on the first row the prompt (its last word
    and the image's number when there are `per_prompt` > 1 per prompt), then the judge's reading."""
    probabilities = run.load("stock.pt")["judge_probabilities"].get(count)
    cells = []
    for i, prompt in enumerate(run.params["prompts"]):
        lines = [f"{short(prompt)} #{i % per_prompt + 1}" if per_prompt > 1 else quoted(prompt)] if first_row else []
        if probabilities is not None:
            read = int(probabilities[i].argmax())
            lines.append(f"judge: {read} ({probabilities[i, read]:.2f})")
        cells.append("\n".join(lines))
    return cells


def stock_stage1_grid(run: RunRecord, per_prompt: int) -> bytes:
    """The stock sampler's stage I samples, one row per step count, titled as `stock_cell_titles`."""
    stored = run.load("stock.pt")
    steps = run.params["steps"]
    return image_grid([list(stored["stage1"][count]) for count in steps],
                      cell_titles=[stock_cell_titles(run, per_prompt, count, r == 0) for r, count in enumerate(steps)],
                      row_titles=[f"{count} steps" for count in steps], value_range=value_range(run),
                      cell_inches=1.2 if per_prompt > 1 else 1.8)


def stock_is_judged(run: RunRecord) -> bool:
    """Whether the judge scored the stock sampler's samples."""
    return "judge_accuracy" in run.metrics["rows"][0]


def stock_cost_headers(run: RunRecord) -> list[str]:
    """Headers of the stock sampler's cost table, with a judge column where it was judged."""
    return ["steps", "wall time (s)", "images / s"] + (["judge accuracy"] if stock_is_judged(run) else [])


def stock_cost_rows(run: RunRecord) -> list[list]:
    """Per step count: wall time, throughput and (where judged) the share of samples the judge reads
    as their prompt's digit, "67% of 3"."""
    timing, judged = run.metrics["timing"], stock_is_judged(run)
    prompt_count = len(run.params["prompts"])
    return [[row["steps"], f"{timing[str(row['steps'])]['seconds']:.2f}",
             f"{timing[str(row['steps'])]['images_per_s']:.1f}"]
            + ([f"{100 * row['judge_accuracy']:.0f}% of {prompt_count}"] if judged else [])
            for row in run.metrics["rows"]]


# --- 1.7 and 1.7.3: SDEdit rows ------------------------------------------------------------------


def sdedit_titles(run: RunRecord) -> list[str]:
    """For each edit a figure shows, in i_start order: its i_start, timestep and similarity to the
    input (Pearson's r), and where judged, the digit the judge reads in it."""
    judge = run.metrics.get("judge")
    titles = []
    for i in run.metrics["shown_i_starts"]:
        lines = [f"i_start={i}", f"t={run.metrics['t_starts'][str(i)]}", f"r = {run.metrics['similarity'][str(i)]:.2f}"]
        if judge is not None:
            lines.append(f"reads {judge['edits'][str(i)]['digit']}")
        titles.append("\n".join(lines))
    return titles


def _listed(values: Sequence) -> str:
    """"1, 3 and 5"."""
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} and {values[-1]}"


def extension_note(run: RunRecord) -> str:
    """What the SDEdit row shows beyond the write-up's i_starts and why, from the run's numbers."""
    shown, write_up = run.metrics["shown_i_starts"], run.params["i_starts"]
    similarity, resemblance = run.metrics["similarity"], run.params["resemblance"]
    extra = shown[len(write_up):]
    if not extra:
        return (f"At i_start = {write_up[-1]}, the last of the write-up's values this model's timesteps reach, the edit already resembles its input "
                f"(r = {similarity[str(write_up[-1])]:.2f} ≥ {resemblance:g}): nothing is added.")
    last = extra[-1]
    reached = similarity[str(last)] >= resemblance
    return (f"i_start = {_listed(extra)} {'extends' if len(extra) == 1 else 'extend'} the write-up's list "
            "until an edit resembles its input "
            f"(r ≥ {resemblance:g}): "
            + (f"the first that does is i_start = {last} (r = {similarity[str(last)]:.2f})." if reached else
               f"none does, up to this model's last timestep (i_start = {last}, r = {similarity[str(last)]:.2f})."))


def judge_reading_note(run: RunRecord) -> str:
    """Which edits the judge reads as the input's digit, as the prompt's digit (where the prompt
    names one) and as some other, from the run's readings; "" where the run was not judged."""
    judge = run.metrics.get("judge")
    if judge is None:
        return ""
    digit_in, prompt_digit = judge["input"]["digit"], judge["prompt"]
    reads = {i: judge["edits"][str(i)]["digit"] for i in run.metrics["shown_i_starts"]}
    groups = []
    if prompt_digit is not None and prompt_digit != digit_in:
        groups.append((f"the prompt's {prompt_digit}", [i for i, d in reads.items() if d == prompt_digit]))
    groups.append((f"the input's {digit_in}", [i for i, d in reads.items() if d == digit_in]))
    groups.append(("another digit", [i for i, d in reads.items() if d not in (digit_in, prompt_digit)]))
    parts = [f"{what} at i_start = {_listed(where)}" for what, where in groups if where]
    return f"The judge reads {'; '.join(parts)}."


def sdedit_row(page: Page, run: RunRecord, model_runs: Sequence[RunRecord], what: str) -> None:
    """SDEdit at the shown i_starts and the original, as the write-up's tables, with how far each
    edit kept its input and, where judged, what the judge reads."""
    stored = run.load("sdedit.pt")
    images = [stored["edits"][i] for i in run.metrics["shown_i_starts"]] + [stored["original"]]
    titles = sdedit_titles(run) + ["Original\nImage"]
    skipped = run.metrics["skipped_i_starts"]
    note = (f" i_start {', '.join(map(str, skipped))} is left out: this profile's model has only "
            f"{len(run.params['timesteps'])} strided timesteps." if skipped else "")
    page.figure(
        image_grid([images], col_titles=titles, value_range=value_range(run), cell_inches=0.7),
        f"{what}, prompt {quoted(run.params['prompt'])}, CFG g = {run.params['guidance']:g}. Smaller i_start "
        "means more noise added and a freer edit; r is the correlation of an edit's pixels with the input's "
        f"(1: the same picture). {extension_note(run)}{note} {judge_reading_note(run)}".rstrip(),
        [*model_runs, run],
    )


def similarity_plot(runs: Sequence[RunRecord], names: Sequence[str]) -> bytes:
    """Each SDEdit run's similarity to its input (Pearson's r) at every i_start it edited, and the
    level taken to mean "resembles"."""
    series = {name: [run.metrics["similarity"][str(i)] for i in sorted(run.load("sdedit.pt")["edits"])]
              for run, name in zip(runs, names)}
    x_values = {name: sorted(run.load("sdedit.pt")["edits"]) for run, name in zip(runs, names)}
    resemblance = runs[0].params["resemblance"]
    return line_plot(series, "i_start", "r (edit vs. input)", x_values=x_values, height=3.0,
                     reference_line=(resemblance, f"resembles its input: r ≥ {resemblance:g}"))


# --- 1.7.2: inpainting -------------------------------------------------------------------------


def inpainting_row(page: Page, run: RunRecord, label: str, model_runs, plan: PartAPlan) -> None:
    """Original, mask, hole, result: one of the write-up's inpainting tables."""
    stored = run.load("inpaint.pt")
    page.figure(
        image_grid([[stored["original"], stored["mask_shown"], stored["hole"], stored["result"]]],
                   col_titles=["Original Image", "Mask", "Hole to Fill", "Image Inpainted"],
                   value_range=value_range(run), cell_inches=1.5),
        f"Inpainting {label}: the white part of the mask is regenerated from pure noise with the prompt "
        f"{quoted(plan.generic_prompt)} and CFG g = {plan.guidance:g}; the rest, reset after every step to the "
        "original noised to the new timestep, comes out unchanged. The hole is shown in mid-gray.",
        [*model_runs, run],
    )
