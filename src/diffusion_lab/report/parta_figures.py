"""Figures and tables shared by the Part A pages: laying out results, never computing them."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from diffusion_lab.experiments.parta_backend import PartABackend
from diffusion_lab.experiments.parta_plan import PartAPlan
from diffusion_lab.experiments.parta_upsample import upsampled
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.report.figures import image_grid
from diffusion_lab.report.page import Page
from diffusion_lab.runcache.runs import RunRecord

SECTION = "Part A: sampling loops"
VIEW_NAMES = {"flip": "flipped upside down", "rot180": "rotated 180°", "rot90": "rotated 90°", "identity": "as is"}
IF_SCHEDULE_LABEL = (
    "none: DeepFloyd IF stage I's noise schedule alone, built from its scheduler config "
    "(backends/if_schedule.py); no IF weights are loaded"
)


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


@contextmanager
def backend_label(page: Page, label: str):
    """Figures added inside say `label` as their backend (e.g. the IF-schedule-only photo)."""
    saved = page.backend_label
    page.backend_label = label
    try:
        yield page
    finally:
        page.backend_label = saved


# --- stage II: any figure's results at 256x256 -------------------------------------------------


@dataclass
class Stage2Figures:
    """After a figure of results, the same results upsampled by stage II, when the build asks for it
    (DIFFUSION_LAB_IF_UPSAMPLE=1 with a stage II configured); otherwise nothing."""

    page: Page
    ctx: BuildContext
    backend: PartABackend
    model_runs: Sequence[RunRecord]

    def add(self, source: RunRecord, images: Sequence[torch.Tensor], prompts: Sequence[str],
            titles: Sequence[str], what: str, view: str | None = None) -> None:
        """`images` of `source`, one prompt each; with `view`, a second row seen through that view."""
        if not self.backend.upsample_figures:
            return
        batch = torch.cat([image.reshape(1, *image.shape[-3:]) for image in images])
        run = upsampled(self.ctx, self.backend, source, batch, list(prompts), view)
        stored = run.load("upsampled.pt")
        rows = [list(stored["images"])] + ([list(stored["viewed"])] if view else [])
        self.page.figure(
            image_grid(rows, col_titles=titles, row_titles=["as is", VIEW_NAMES[view]] if view else None,
                       value_range=value_range(run), cell_inches=2.4),
            f"{what}, upsampled to {size(stored['images'])} by stage II ({self.backend.stage2_label}), "
            f"conditioned on {', '.join(sorted(set(map(quoted, prompts))))}.",
            [*self.model_runs, source, run],
        )


# --- 1.7 and 1.7.3: SDEdit rows ------------------------------------------------------------------


def sdedit_row(page: Page, run: RunRecord, model_runs: Sequence[RunRecord], what: str,
               stage2: Stage2Figures | None = None) -> None:
    """SDEdit with i_start = 1, 3, ... and the original, as the write-up's tables."""
    stored = run.load("sdedit.pt")
    i_starts = sorted(stored["edits"])
    images = [stored["edits"][i] for i in i_starts] + [stored["original"]]
    titles = [f"SDEdit with\ni_start={i} (t={run.metrics['t_starts'][str(i)]})" for i in i_starts] + ["Original\nImage"]
    skipped = run.metrics["skipped_i_starts"]
    note = (f" i_start {', '.join(map(str, skipped))} is left out: this profile's model has only "
            f"{len(run.params['timesteps'])} strided timesteps." if skipped else "")
    page.figure(
        image_grid([images], col_titles=titles, value_range=value_range(run), cell_inches=1.35),
        f"{what}, prompt {quoted(run.params['prompt'])}, CFG g = {run.params['guidance']:g}. Smaller i_start "
        f"means more noise added and a freer edit.{note}",
        [*model_runs, run], pixelated=True,
    )
    if stage2 is not None:
        stage2.add(run, images[:-1], [run.params["prompt"]] * len(i_starts), titles[:-1], what)


# --- 1.7.2: inpainting -------------------------------------------------------------------------


def inpainting_row(page: Page, run: RunRecord, label: str, model_runs, plan: PartAPlan,
                   stage2: Stage2Figures | None = None) -> None:
    """Original, mask, hole, result: one of the write-up's inpainting tables."""
    stored = run.load("inpaint.pt")
    page.figure(
        image_grid([[stored["original"], stored["mask_shown"], stored["hole"], stored["result"]]],
                   col_titles=["Original Image", "Mask", "Hole to Fill", "Image Inpainted"],
                   value_range=value_range(run), cell_inches=1.5),
        f"Inpainting {label}: the white part of the mask is regenerated from pure noise with the prompt "
        f"{quoted(plan.generic_prompt)} and CFG g = {plan.guidance:g}; the rest, reset after every step to the "
        "original noised to the new timestep, comes out unchanged. The hole is shown in mid-gray.",
        [*model_runs, run], pixelated=True,
    )
    if stage2 is not None:
        stage2.add(run, [stored["result"]], [plan.generic_prompt], ["Image Inpainted"], f"Inpainting {label}")


# --- 1.8, 1.9: illusions and the judge's verdicts -------------------------------------------------


def candidate_titles(run: RunRecord, views: Sequence[int] = (0, 1)) -> list[str]:
    """Titles for the top row of a candidate grid: the candidate's number (★: the judge's pick), then
    for each view in `views` the judge's probability of that view's target digit, with the digit it
    reads instead in parentheses. Only the top row has titles, so they never cover an image."""
    judge = run.metrics.get("judge")
    if judge is None:
        return [f"#{i + 1}" for i in range(run.params["candidates"])]
    titles = []
    for i, c in enumerate(judge["candidates"]):
        lines = [f"{'★ ' if i == judge['best'] else ''}#{i + 1}"]
        for view in views:
            target, read = judge["targets"][view], c[f"read_{view + 1}"]
            lines.append(f"p({target}) = {c[f'p_{view + 1}']:.2f}" + ("" if read == target else f" ({read})"))
        titles.append("\n".join(lines))
    return titles


JUDGE_TITLES_NOTE = (
    "Above each candidate: its number (★ = the judge's pick), then the judge's probability of the digit "
    "each row should show, top row first; a digit in parentheses is what the judge reads instead."
)


def verdict(run: RunRecord) -> str:
    judge = run.metrics.get("judge")
    if judge is None:
        return "not judged (no classifier for this backend)"
    k, n = judge["both_count"], run.params["candidates"]
    if k == 0:
        return f"**fails**: no candidate of {n} reads as intended in both views"
    if k * 2 < n:
        return f"works sometimes: {k} of {n} candidates read as intended in both views"
    return f"works: {k} of {n} candidates read as intended in both views"


def working_count(runs: Sequence[RunRecord]) -> int:
    """How many illusions have at least one candidate the judge reads as intended in both views."""
    return sum(run.metrics["judge"]["both_count"] > 0 for run in runs)


def judge_rows(runs: Sequence[RunRecord], names: Sequence[str]) -> list[list[str]]:
    """One row per illusion: how many candidates work, mean and judge-best probabilities, verdict."""
    rows = []
    for run, name in zip(runs, names):
        judge = run.metrics["judge"]
        best = judge["candidates"][judge["best"]]
        rows.append([
            name, f"{judge['both_count']} / {run.params['candidates']}",
            f"{judge['mean_p_1']:.2f} / {judge['mean_p_2']:.2f}",
            f"#{judge['best'] + 1}: {best['p_1']:.2f} / {best['p_2']:.2f}",
            f"{best['read_1']} / {best['read_2']}", verdict(run),
        ])
    return rows


def judge_headers(view_1: str, view_2: str) -> list[str]:
    return ["illusion", "candidates reading as intended in both views",
            f"mean p(target): {view_1} / {view_2}", f"judge-best candidate, p(target): {view_1} / {view_2}",
            f"judge-best reads: {view_1} / {view_2}", "verdict"]
