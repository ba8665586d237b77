"""Measurements made on a lent GPU machine, kept in the repository and shown on the Build page,
apart from this build's own runs: laid out from a session folder as `experiments.gpu_session` reads
it. Every number shown is computed from those files; the Part B judge tables reuse the functions
that draw this build's own pages, against the quality bar stored with the session.
"""

from __future__ import annotations

import posixpath

from diffusion_lab.experiments.gpu_session import GpuSession, MeasuredRun, load_sessions
from diffusion_lab.experiments.parta_inputs import REPO_ROOT
from diffusion_lab.profiles import QualityBar
from diffusion_lab.report.flow_figures import (
    CLASS_FLOW_SCORE_HEADERS,
    FLOW_SCORE_HEADERS,
    flow_bar_text,
    flow_score_rows,
)
from diffusion_lab.report.page import markdown_table
from diffusion_lab.report.partb_figures import (
    GUIDANCE_SWEEP_HEADERS,
    TIME_SCORE_HEADERS,
    guidance_sweep_rows,
    guided_bar_text,
    time_score_rows,
    unguided_bar_text,
)

BUILD_PAGE_SECTION = "build.md#measured-on-a-gpu-not-by-this-build"
VARIANT_WORDS = {
    "eager_fp32": "eager fp32",
    "eager_bf16": "eager bf16 + channels_last (what training runs)",
    "cuda_graph": "CUDA graph of the whole step",
    "compile": "torch.compile",
}
# The write-up's three Part B models (B1, B2, B3); the flow-matching pair came later.
WRITE_UP_MODELS = ("time_ddpm", "class_ddpm", "denoiser")


# --- Markdown ------------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:,.0f} s" if value >= 10 else f"{value:.1f} s"


def build_section(session: GpuSession) -> str:
    """How long the session's site build and its runs took, and the GPU's memory and load."""
    lines = []
    if session.build_parts:
        parts = "; then ".join(
            f"{part.seconds} s" + (" until the call's time limit cut it" if part.exit_status == 124
                                   else f" ({'finished' if part.exit_status == 0 else f'exit {part.exit_status}'})")
            for part in session.build_parts)
        total = sum(part.seconds for part in session.build_parts)
        lines.append(f"- `mkdocs build --strict`: {parts}; {total} s in all, the later parts resuming from the run "
                     "cache the earlier ones left.")
    total_compute = sum(run.compute_s for run in session.runs)
    lines.append(f"- {len(session.runs)} runs, {_seconds(total_compute)} of compute in all (Part B's heavy runs "
                 "in two processes side by side, so more than the wall time).")
    if session.memory_peak_mib is not None:
        lines.append(f"- GPU memory in use at most {session.memory_peak_mib / 1024:.1f} GiB; mean utilization "
                     f"{session.mean_utilization:.0f}% (nvidia-smi every 0.5 s).")
    totals: dict[str, list[float]] = {}
    for run in session.runs:
        totals.setdefault(run.name, []).append(run.compute_s)
    rows = [[f"`{name}`", len(times), _seconds(sum(times))]
            for name, times in sorted(totals.items(), key=lambda item: -sum(item[1]))]
    return "\n".join(lines) + "\n\n" + markdown_table(["run", "runs", "compute"], rows)


def _flow_parts(session: GpuSession, reference: MeasuredRun, bar: QualityBar) -> list[str]:
    """The flow page's score table and bar text for each flow model the session scored."""
    parts = []
    for kind, headers in (("time", FLOW_SCORE_HEADERS), ("class", CLASS_FLOW_SCORE_HEADERS)):
        scores, training = session.run(f"partb/{kind}-flow-scores"), session.run(f"partb/{kind}-flow-training")
        if scores is not None and training is not None:
            parts += [f"Flow matching, {kind}-conditioned:", "",
                      markdown_table(headers, flow_score_rows(scores, reference, training)),
                      flow_bar_text(scores, reference, bar), ""]
    return parts


def judge_section(session: GpuSession) -> str:
    """The Part B judge's tables of the session's runs, with each bar met or not, as the pages state
    them: the bar stored with the session (`GpuSession.bar`)."""
    bar = session.bar
    reference = session.run("partb/judge-reference")
    if reference is None:
        return "The session has no judge reference run, so no judge scores.\n"
    parts = []
    scores, training = session.run("partb/time-ddpm-scores"), session.run("partb/time-ddpm-training")
    if scores is not None and training is not None:
        parts += ["Time-conditioned DDPM, unconditional samples:", "",
                  markdown_table(TIME_SCORE_HEADERS, time_score_rows(scores, reference, training)),
                  unguided_bar_text(scores, reference, training, bar), ""]
    sweep = session.run("partb/guidance-sweep")
    if sweep is not None:
        parts += ["Class-conditioned DDPM, per guidance scale:", "",
                  markdown_table(GUIDANCE_SWEEP_HEADERS, guidance_sweep_rows(sweep, reference)),
                  guided_bar_text(sweep, reference, bar), ""]
    return "\n".join(parts + _flow_parts(session, reference, bar))


def training_speed_section(speed: dict) -> str:
    """Images/s and the projected wall time of each model's whole recipe, per implementation variant."""
    rows_by_model: dict[str, dict[str, dict]] = {}
    for row in speed["rows"]:
        rows_by_model.setdefault(row["model"], {})[row["variant"]] = row
    variants = [variant for variant in VARIANT_WORDS if any(variant in rows for rows in rows_by_model.values())]

    def cell(row: dict | None) -> str:
        if row is None or row.get("status") != "ok":
            return "–"
        # projected_s includes the compile (setup) time
        setup = f", {row['setup_s']:.0f} s of it compiling" if row.get("setup_s", 0) >= 1 else ""
        return f"{row['images_per_s']:,.0f} img/s; {_seconds(row['projected_s'])}{setup}"

    table = markdown_table(["model (recipe steps)"] + [VARIANT_WORDS[v] for v in variants],
                   [[f"{model} ({next(iter(rows.values()))['recipe_steps']:,})"] + [cell(rows.get(v)) for v in variants]
                    for model, rows in rows_by_model.items()])
    totals = []
    for variant in variants:
        chosen = [rows_by_model[model].get(variant) for model in WRITE_UP_MODELS if model in rows_by_model]
        if chosen and all(row is not None and row.get("status") == "ok" for row in chosen):
            total = sum(row["projected_s"] for row in chosen)
            totals.append(f"{VARIANT_WORDS[variant]} {_seconds(total)}")
    summary = ("The write-up's three models (time- and class-conditioned DDPM, denoiser) would train in: "
               + "; ".join(totals) + ".") if totals else ""
    return (f"{speed['device']}, torch {speed['torch']}; each cell: training images/s of real optimizer steps "
            "at the recipe's batch size, and that model's whole recipe projected from it.\n\n" + table + "\n" + summary + "\n")


def if_fp16_section(check: dict) -> str:
    """The project's DeepFloyd loop against IFPipeline on the tiny random-weight IF, per seed."""
    rows = [[seed["seed"], f"{seed['ours_vs_pipeline']['max']:.3g}", f"{seed['ours_fp32_vs_pipeline_fp32']['max']:.3g}",
             f"{seed['pipeline_fp32_vs_pipeline']['max']:.3g}", f"{seed['pipeline_other_seed_vs_pipeline']['max']:.3g}"]
            for seed in check["seeds"]]
    equal = sum(seed["ours_vs_pipeline"]["bitwise_equal"] for seed in check["seeds"])
    return (f"{check['device_name']}, torch {check['torch']}, diffusers {check['diffusers']}, {check['dtype']}: the "
            f"project's sampling loop equals `IFPipeline` bitwise for {equal} of {len(check['seeds'])} seeds "
            "(images in [-1, 1]; max absolute differences).\n\n"
            + markdown_table(["seed", f"ours − pipeline, {check['dtype']}", "ours − pipeline, fp32",
                      f"pipeline fp32 − pipeline {check['dtype']}", "pipeline, another seed"], rows))


def judged_by(session: GpuSession) -> str:
    return f"judged by the quality bar of `{session.bar_commit}`, stored with the session"


def session_markdown(session: GpuSession) -> str:
    info = session.info
    folder = session.folder.relative_to(REPO_ROOT).as_posix() if session.folder.is_relative_to(REPO_ROOT) \
        else session.folder.name
    parts = [f"### {info['device']}, {info['date']}", "",
             f"{info['what']}: the tree of commit `{info['tree']}`, with `{info['script']}`; its samples "
             f"{judged_by(session)}. Its files are in `{folder}/`.", "",
             "#### The full profile's build", "", build_section(session),
             "#### Judge scores of the full profile", "", judge_section(session)]
    if session.train_speed is not None:
        parts += ["#### Part B training speed, the course's recipe", "", training_speed_section(session.train_speed)]
    if session.if_fp16 is not None:
        parts += ["#### The DeepFloyd IF loop in fp16 on CUDA", "", if_fp16_section(session.if_fp16)]
    return "\n".join(parts)


def gpu_measurements_markdown(sessions: list[GpuSession]) -> str:
    """The Build page's section of GPU measurements, or "" when the repository holds none."""
    if not sessions:
        return ""
    return ("## Measured on a GPU, not by this build\n\nThese numbers were recorded on a GPU machine and are kept in "
            "the repository; this build did not compute them and does not change them.\n\n"
            + "\n".join(session_markdown(session) for session in sessions))


def _measured_intro(session: GpuSession, from_page: str) -> str:
    link = posixpath.relpath(BUILD_PAGE_SECTION, posixpath.dirname(from_page) or ".")
    info = session.info
    return (f"**Measured on a GPU.** The `{info['profile']}` profile, built on an {info['device']} on {info['date']} "
            f"at `{info['tree']}` and {judged_by(session)} ([Build page]({link}); not computed by this build, and "
            "unchanged by it):")


def unguided_on_gpu_text(from_page: str, sessions: list[GpuSession] | None = None) -> str:
    """What the latest GPU session's time-conditioned DDPM reached against the bar, for the B2 page
    at `from_page`; "" when no session has its scores."""
    for session in reversed(load_sessions() if sessions is None else sessions):
        reference, scores = session.run("partb/judge-reference"), session.run("partb/time-ddpm-scores")
        training = session.run("partb/time-ddpm-training")
        if None not in (reference, scores, training):
            return f"{_measured_intro(session, from_page)}\n\n{unguided_bar_text(scores, reference, training, session.bar)}"
    return ""


def guided_on_gpu_text(from_page: str, sessions: list[GpuSession] | None = None) -> str:
    """What the latest GPU session's class-conditioned DDPM reached against the bar, for the B3 page
    at `from_page`; "" when no session has its guidance sweep."""
    for session in reversed(load_sessions() if sessions is None else sessions):
        reference, sweep = session.run("partb/judge-reference"), session.run("partb/guidance-sweep")
        if None not in (reference, sweep):
            return f"{_measured_intro(session, from_page)} {guided_bar_text(sweep, reference, session.bar)}"
    return ""
