"""Figures and tables of the illusion page (1.8, 1.9): candidates, the judge's verdicts, the sweep.

Laying out results, never computing them: every number comes from a run's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

from diffusion_lab.experiments.parta_plan import Anagram, Hybrid
from diffusion_lab.report.figures import image_grid
from diffusion_lab.report.parta_figures import VIEW_NAMES, quoted, value_range
from diffusion_lab.runcache.runs import RunRecord


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
        return f"**fails**: no candidate of {n} reads as intended in both views{range_note(run)}"
    if k * 2 < n:
        return f"works sometimes: {k} of {n} candidates read as intended in both views"
    return f"works: {k} of {n} candidates read as intended in both views"


def _range_text(values) -> str:
    return f"[{values[0] + 0.0:g}, {values[1] + 0.0:g}]".replace("-", "−")  # + 0.0: no "−0"


def range_note(run: RunRecord) -> str:
    """Where the run's view moves the model's data range: what it moves it to."""
    moved = run.metrics.get("view_range")
    if not moved:
        return ""
    return (f"; the view sends the model's data range {_range_text(run.metrics['data_range'])} to "
            f"{_range_text(moved)}, where the model was never shown an image")


VIEW_STATISTICS_HEADERS = ["view", "max |MᵀM − I|", "std of v(ε)", "correlation of neighbouring pixels of v(ε)",
                           "data range through the view", "kind"]


def view_statistics_rows(run: RunRecord) -> list[list[str]]:
    """One row per view of the `view_statistics` run: orthogonality, the noise it makes of N(0, I)."""
    rows = []
    for row in run.metrics["rows"]:
        moved = row["view_range"]
        kind = "counterexample, never used" if row["view"] == "blur" else "anagram view"
        rows.append([VIEW_NAMES[row["view"]], f"{row['orthogonality_error']:.3g}", f"{row['noise_std']:.3f}",
                     f"{row['neighbour_correlation']:+.3f}",
                     _range_text(moved) if moved else f"{_range_text(run.metrics['data_range'])} (kept)", kind])
    return rows


def view_statistics_text(run: RunRecord) -> str:
    """What the table shows, in numbers read from it: the views' largest orthogonality error and
    noise std range, and the blur's."""
    views = [row for row in run.metrics["rows"] if row["view"] != "blur"]
    blur = next(row for row in run.metrics["rows"] if row["view"] == "blur")
    worst = max(row["orthogonality_error"] for row in views)
    stds = [row["noise_std"] for row in views]
    shape = " × ".join(str(size) for size in run.params["shape"])
    return (f"Each anagram view's matrix M has max |MᵀM − I| = {worst:.3g} (measured on "
            f"{' × '.join(str(size) for size in run.params['matrix_shape'])} images), and mapped noise of the "
            f"model's {shape} shape keeps a std of {min(stds):.3f} to {max(stds):.3f} over {run.params['draws']} "
            f"draws. The blur ({run.params['blur_kernel'][0]} × {run.params['blur_kernel'][0]}, "
            f"σ = {run.params['blur_kernel'][1]:g}) is linear but not orthogonal (max |MᵀM − I| = "
            f"{blur['orthogonality_error']:.3g}): it turns N(0, I) into noise of std {blur['noise_std']:.3f} whose "
            f"neighbouring pixels correlate at {blur['neighbour_correlation']:.2f}, which is no noisy image any "
            "diffusion model was trained on, and it has no inverse to map the second estimate back.")


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


def anagram_name(spec: Anagram) -> str:
    """An anagram's heading: its two prompts and its view, '"a 6" / "a 9", rotated 180°'."""
    return f"{quoted(spec.prompt_1)} / {quoted(spec.prompt_2)}, {VIEW_NAMES[spec.view]}"


def hybrid_name(spec: Hybrid) -> str:
    """A hybrid's heading: 'far "a 1" / near "a 7"'."""
    return f"far {quoted(spec.far)} / near {quoted(spec.near)}"


def anagram_view_names(anagrams: Sequence[Anagram]) -> str:
    """The views the anagrams use, each named once, alphabetically: "flipped upside down, rotated 180°"."""
    return ", ".join(sorted({VIEW_NAMES[spec.view] for spec in anagrams}))


def picked_candidate(run: RunRecord) -> int:
    """The index of the candidate an illusion run shows large: the judge's pick, or 0 (the first)
    where the run was not judged."""
    return run.metrics["judge"]["best"] if "judge" in run.metrics else 0


def candidate_number(run: RunRecord) -> str:
    """"Candidate #k": the shown candidate's 1-based number."""
    return f"Candidate #{picked_candidate(run) + 1}"


def picked_candidate_caption(run: RunRecord) -> str:
    """"Candidate #k of n", with ", picked by the judge" where the judge chose it."""
    return (f"{candidate_number(run)} of {run.params['candidates']}"
            + (", picked by the judge" if "judge" in run.metrics else ""))


def candidate_total(runs: Sequence[RunRecord]) -> int:
    """How many candidates the illusion runs sampled, all together."""
    return sum(run.params["candidates"] for run in runs)


def far_reading_count(runs: Sequence[RunRecord]) -> int:
    """Over every candidate of the judged hybrid runs: how many the judge reads, up close (the image
    itself), as the *far* digit."""
    return sum(candidate["read_2"] == run.metrics["judge"]["targets"][0]
               for run in runs for candidate in run.metrics["judge"]["candidates"])


def _is_picked(sweep: RunRecord, row: dict) -> bool:
    picked = sweep.metrics["selected"][row["pair"]]
    return picked["sigma"] == row["sigma"] and picked["kernel_size"] == row["kernel_size"]


def _sweep_row(sweep: RunRecord, pair: int, sigma: float) -> dict | None:
    return next((row for row in sweep.metrics["rows"] if row["pair"] == pair and row["sigma"] == sigma), None)


def hybrid_sweep_grid(sweep: RunRecord, pair: int) -> bytes:
    """One hybrid of the sweep: a row per low-pass setting, its candidates up close (the images) and
    then from afar (their low-passes); each row titled with its setting and, where judged, how many
    candidates work (★: the setting the judge picked)."""
    stored = sweep.load("sweep.pt")
    points, k = sweep.params["sweep"], sweep.params["candidates"]
    part = slice(pair * k, (pair + 1) * k)
    row_titles = []
    for point in points:
        title = f"σ = {point['sigma']:g}\nkernel {point['kernel_size']}"
        judged = _sweep_row(sweep, pair, point["sigma"])
        if judged is not None:
            title += f"\n{'★ ' if _is_picked(sweep, judged) else ''}{judged['both_count']} of {k} work"
        row_titles.append(title)
    return image_grid(
        [list(stored["images"][str(p["sigma"])][part]) + list(stored["lowpass"][str(p["sigma"])][part])
         for p in points],
        col_titles=[f"#{i + 1}\nup close" for i in range(k)] + [f"#{i + 1}\nfrom afar" for i in range(k)],
        row_titles=row_titles, value_range=value_range(sweep), cell_inches=0.7,
    )


def hybrid_sweep_headers(sweep: RunRecord) -> list[str]:
    """Headers of the judge's sweep table: the σ, then one column per hybrid."""
    return ["σ (kernel)"] + [f"far {quoted(far)} / near {quoted(near)}" for far, near in sweep.params["pairs"]]


def hybrid_sweep_rows(sweep: RunRecord) -> list[list[str]]:
    """One row per σ of the judged sweep: per hybrid, how many of its candidates work and how often
    each view alone reads as intended; ★ marks the setting the judge picked for the hybrid."""
    k = sweep.params["candidates"]
    rows = []
    for point in sweep.params["sweep"]:
        cells = [f"{point['sigma']:g} ({point['kernel_size']})"]
        for pair in range(len(sweep.params["pairs"])):
            judged = _sweep_row(sweep, pair, point["sigma"])
            mark = "★ " if _is_picked(sweep, judged) else ""
            cells.append(f"{mark}**{judged['both_count']} / {k}** work; far reads far {judged['far_reads_far']}, "
                         f"near reads near {judged['near_reads_near']}")
        rows.append(cells)
    return rows


def sweep_works_at(sweep: RunRecord, sigma: float) -> tuple[int, int]:
    """(candidates that work, candidates) over every hybrid of the judged sweep at low-pass `sigma`."""
    rows = [row for row in sweep.metrics["rows"] if row["sigma"] == sigma]
    return sum(row["both_count"] for row in rows), len(rows) * sweep.params["candidates"]


def sweep_view_counts(sweep: RunRecord, sigma: float) -> tuple[int, int, int]:
    """Over every hybrid of the judged sweep at low-pass `sigma`: how many candidates the judge reads
    as the far digit from afar, how many as the near digit up close, and how many there are."""
    rows = [row for row in sweep.metrics["rows"] if row["sigma"] == sigma]
    return (sum(row["far_reads_far"] for row in rows), sum(row["near_reads_near"] for row in rows),
            len(rows) * sweep.params["candidates"])


HYBRID_TABLE_HEADERS = ["hybrid", "kernel", "σ", "works"]


def hybrid_table_rows(runs: Sequence[RunRecord], names: Sequence[str]) -> list[list[str]]:
    """One row per hybrid run: its low-pass kernel and σ, and how many of its candidates work (the
    judge reads the far digit from afar and the near one up close), "n of N"."""
    return [[name, str(run.metrics["kernel_size"]), f"{run.metrics['sigma']:g}",
             f"{run.metrics['judge']['both_count']} of {run.params['candidates']}"]
            for run, name in zip(runs, names)]
