"""Where this build differs from the write-up, as rows computed from the configuration data.

The write-up's setup is data already: Part A's `deepfloyd` plan (`experiments/parta_plan.py`) holds
its prompts, images and settings, DeepFloyd IF's constants (`backends/deepfloyd.py`,
`backends/if_schedule.py`) its model, and the `full` profile (`profiles.py`) the course recipe of
Part B. The functions here compare this build's plan, model and profile with those, value by value,
and return a row for every value that differs: nothing on the Deviations page or the home page's
summary is typed by hand, so both change with the profile and the backend.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Callable, Sequence

from diffusion_lab.backends.deepfloyd import DEFAULT_STAGE1, DEFAULT_STAGE2, IF_STAGE1_SIZE, IF_STAGE2_SIZE, STRIDE
from diffusion_lab.backends.if_schedule import IF_STAGE1_SCHEDULER_CONFIG
from diffusion_lab.experiments.parta_plan import PartAPlan
from diffusion_lab.forward_process import strided_timesteps
from diffusion_lab.illusions import hybrid_kernel
from diffusion_lab.profiles import COURSE_GUIDANCE, Profile
from diffusion_lab.report.partb_figures import WRITE_UP_GUIDANCE, scales_text
from diffusion_lab.report.gpu_measurements import load_sessions
from diffusion_lab.runcache.context import DEVICE_ORDER, PRECISION_RULES, BuildContext

# Where each part is shown (paths relative to docs/, as Page.path).
A0 = ("part-a/stock-pipeline.md", "A0")
A1 = ("part-a/sampling-loops.md", "A1")
A2 = ("part-a/editing.md", "A2")
A3 = ("part-a/illusions.md", "A3")
B11 = ("part-b/unet.md", "B1.1")
B1 = ("part-b/single-step-denoiser.md", "B1")
B2 = ("part-b/time-conditioned-ddpm.md", "B2")
B3 = ("part-b/class-conditioned-ddpm.md", "B3")
B4 = ("part-b/flow-matching.md", "B4")
B5 = ("part-b/ddpm-vs-flow.md", "B5")
NOWHERE = ("", "")


@dataclass(frozen=True)
class Deviation:
    """One value where this build differs from the write-up, and the page that shows it."""

    group: str  # what the value belongs to: "the model", "the plan", "time-conditioned DDPM (B2.2)"
    setting: str  # what the value is, in words
    write_up: str  # the write-up's value (for Part B: the course recipe's), formatted
    build: str  # this build's value, formatted
    page: str  # the page that shows it, relative to docs/ ("" for none)
    section: str  # its section, as the link text ("A2", "B3")


@dataclass(frozen=True)
class Comparison:
    """The deviations of one part, and how many compared values agree with the write-up."""

    rows: tuple[Deviation, ...]
    agreeing: int

    @property
    def compared(self) -> int:
        return len(self.rows) + self.agreeing


@dataclass(frozen=True)
class ModelFacts:
    """What Part A's noise model is, as far as the write-up's figures depend on it."""

    model: str  # in words
    num_timesteps: int  # T, the training schedule's length
    timesteps: tuple[int, ...]  # the strided list the loops run on, descending to 0
    sample_shape: tuple[int, int, int]  # (channels, height, width) of stage I's samples
    upsampler: str | None  # stage II, where there is one


# What the write-up ran: DeepFloyd IF stage I (and stage II), from the backend's own constants.
WRITE_UP_MODEL = ModelFacts(
    model=f"DeepFloyd IF stage I `{DEFAULT_STAGE1}`",
    num_timesteps=IF_STAGE1_SCHEDULER_CONFIG["num_train_timesteps"],
    timesteps=tuple(strided_timesteps((IF_STAGE1_SCHEDULER_CONFIG["num_train_timesteps"] - 1) // STRIDE * STRIDE,
                                      STRIDE, IF_STAGE1_SCHEDULER_CONFIG["num_train_timesteps"])),
    sample_shape=(3, IF_STAGE1_SIZE, IF_STAGE1_SIZE),
    upsampler=f"DeepFloyd IF stage II `{DEFAULT_STAGE2}`, {IF_STAGE1_SIZE} -> {IF_STAGE2_SIZE} pixels",
)


def model_facts(handle) -> ModelFacts:
    """The facts of a Part A backend handle (`experiments.parta_backend.PartABackend`); for
    DeepFloyd IF this loads the weights, as every Part A page does."""
    return ModelFacts(
        model=handle.label,
        num_timesteps=len(handle.alphas_cumprod),
        timesteps=tuple(int(t) for t in handle.timesteps),
        sample_shape=tuple(handle.sample_shape),
        upsampler=handle.stage2_label if handle.has_stage2 else None,
    )


# --- formatting values ----------------------------------------------------------------------------

def _quoted(prompt: str) -> str:
    return f"“{prompt}”" if prompt else "“” (unconditional)"


def format_value(value: Any) -> str:
    """A plan or recipe value in words: prompts quoted, images by their label, tuples joined."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}" if value >= 10_000 else str(value)
    if isinstance(value, (tuple, list)):
        if not value:
            return "none"
        if len(value) > 1 and len(set(map(repr, value))) == 1:
            return f"{format_value(value[0])} × {len(value)}"
        numbers = all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value)
        return ("; ", ", ")[numbers].join(format_value(item) for item in value)
    if is_dataclass(value):
        label = getattr(value, "label", None)
        if isinstance(label, str):
            return label
        return ", ".join(f"{field.name.replace('_', ' ')} {format_value(getattr(value, field.name))}"
                         for field in fields(value))
    return str(value)


def _plain(value: Any) -> str:
    """A setting that is a name, not a prompt: unquoted."""
    return "none" if value is None else str(value)


# --- what each value is called and where it is shown ----------------------------------------------

@dataclass(frozen=True)
class Setting:
    """How a field is named on the page, where it is shown, how its value reads, and whether it
    applies to a recipe at all (a warm-up length means nothing without a warm-up)."""

    label: str
    where: tuple[str, str] = NOWHERE
    show: Callable[[Any], str] = format_value
    applies: Callable[[Any], bool] = lambda owner: True


# Prose that explains a value (the plan's notes, checkpoint labels) and the key of a row are not values.
NOT_COMPARED = {"backend", "profile", "notes", "checkpoint_labels"}


def _is_prose(name: str) -> bool:
    return name in NOT_COMPARED or name.endswith("_note")


PLAN_SETTINGS: dict[str, Setting] = {
    "stock_prompts": Setting("prompts of the stock pipeline (0)", A0),
    "stock_steps": Setting("step counts of the stock pipeline (0)", A0, lambda v: " and ".join(map(str, v))),
    "stock_images_per_prompt": Setting("images per prompt (0)", A0),
    "generic_prompt": Setting("the prompt that names no content (1.3–1.5, 1.7)", A1),
    "test_image": Setting("test image (1.1–1.4, 1.7)", A1),
    "noise_fractions": Setting("noise levels t / T (1.1–1.3)", A1, lambda v: ", ".join(f"{x:g}" for x in v)),
    "iterative_i_start": Setting("i_start of iterative denoising (1.4)", A1),
    "frame_every": Setting("noisy image shown every n steps (1.4)", A1),
    "num_samples": Setting("samples (1.5, 1.6)", A1),
    "cfg_prompts": Setting("prompts of the guided samples (1.6)", A1),
    "guidance": Setting("classifier-free guidance scale g (1.6 on)", A1),
    "i_starts": Setting("i_start values (1.7, 1.7.1, 1.7.3)", A2, lambda v: ", ".join(map(str, v))),
    "sdedit_extension_step": Setting("after those, i_start every n steps until an edit resembles its input (1.7)", A2),
    "sdedit_resemblance": Setting("an edit resembles its input at a correlation of at least (1.7)", A2),
    "sdedit_images": Setting("images edited (1.7)", A2),
    "drawn_images": Setting("web and drawn images (1.7.1)", A2),
    "inpaintings": Setting("inpainting image and mask (1.7.2)", A2,
                           lambda v: "; ".join(f"{i.image.label} with the {i.mask.label}" for i in v)),
    "text_edits": Setting("text-conditional edits (1.7.3)", A2,
                          lambda v: "; ".join(f"{_quoted(e.prompt)} on {e.image.label}" for e in v)),
    "anagrams": Setting("visual anagrams (1.8)", A3,
                        lambda v: "; ".join(f"{_quoted(a.prompt_1)} / {_quoted(a.prompt_2)} ({a.view})" for a in v)),
    "hybrids": Setting("hybrid images, far / near (1.9)", A3,
                       lambda v: "; ".join(f"{_quoted(h.far)} / {_quoted(h.near)}" for h in v)),
    "illusion_candidates": Setting("seeds per illusion (1.8, 1.9)", A3),
    "hybrid_sweep_sigmas": Setting("low-pass of the hybrids (1.9)", A3, lambda v: _hybrid_lowpass_text(v)),
    "hybrid_sweep_candidates": Setting("seeds per point of the hybrid sweep (1.9)", A3),
    "judge": Setting("samples read by Part B's MNIST judge", A0),
    "if_schedule_photo": Setting("photo noised with IF's own schedule (1.1, 1.2)", A1),
    "photo_size": Setting("photo size (pixels)", A1),
}

MODEL_SETTINGS: dict[str, Setting] = {
    "model": Setting("noise model", A0, _plain),
    "num_timesteps": Setting("training timesteps T", A1),
    "timesteps": Setting("strided timesteps of the loops (1.4 on)", A1, lambda v: _timesteps_text(v)),
    "sample_shape": Setting("sample size (channels × height × width)", A0, lambda v: " × ".join(map(str, v))),
    "upsampler": Setting("stage II upsampler", A0, _plain),
}


def _hybrid_lowpass_text(sigmas: Sequence[float]) -> str:
    if not sigmas:
        size, sigma = hybrid_kernel(IF_STAGE1_SIZE)
        return (f"one Gaussian kernel, scaled to the image size ({size} px, σ {sigma:g} at "
                f"{IF_STAGE1_SIZE}×{IF_STAGE1_SIZE})")
    return "for each hybrid, the σ Part B's judge reads best among " + ", ".join(f"{x:g}" for x in sigmas)


def _timesteps_text(timesteps: Sequence[int]) -> str:
    strides = {a - b for a, b in zip(timesteps, timesteps[1:])}
    stride = f"stride {strides.pop()}" if len(strides) == 1 else "uneven strides"
    return f"{timesteps[0]}, {timesteps[1]}, …, {timesteps[-1]} ({len(timesteps)} steps, {stride})"


def _one_cycle(recipe) -> bool:
    return getattr(recipe, "lr_schedule", "") == "one_cycle"


def _exponential(recipe) -> bool:
    return getattr(recipe, "lr_schedule", "exponential") == "exponential"


def _all_digits(value) -> str:
    return "all 60,000" if value is None else f"{value:,}"


RECIPE_SETTINGS: dict[str, Setting] = {
    "num_hiddens": Setting("width D (hidden channels)"),
    "channels": Setting("channels"),
    "feature_dim": Setting("feature dimensions"),
    "batch_size": Setting("batch size"),
    "epochs": Setting("epochs"),
    "learning_rate": Setting("learning rate (Adam)"),
    "sigma": Setting("training noise σ"),
    "checkpoint_epochs": Setting("checkpoints shown, after epoch", show=lambda v: ", ".join(f"{e:g}" for e in v)),
    "train_subset": Setting("training digits", show=_all_digits),
    "precision": Setting("precision", show=_plain),
    "num_timesteps": Setting("timesteps T"),
    "beta1": Setting("β₁"),
    "beta2": Setting("β_T"),
    "lr_total_decay": Setting("learning-rate decay over training", applies=_exponential),
    "p_uncond": Setting("class dropout p_uncond"),
    "lr_schedule": Setting("learning-rate schedule", show=lambda v: {"exponential": "exponential decay per epoch",
                                                                   "one_cycle": "one cycle: warm-up, cosine decay",
                                                                   "constant": "none (a constant rate)"}
                           .get(v, _plain(v))),
    "warmup_fraction": Setting("share of steps spent warming up", applies=_one_cycle),
    "ema_decay": Setting("EMA of the weights, decay"),
    "sample_weights": Setting("weights the figures sample", show=_plain),
    "min_snr_gamma": Setting("Min-SNR loss weights, γ", show=lambda v: "none (uniform)" if v is None else f"{v:g}"),
    "min_snr_floor": Setting("Min-SNR weight floor", applies=lambda recipe: getattr(recipe, "min_snr_gamma", None)
                             is not None),
    "warm_start": Setting("starts from the trained time-conditioned model"),
    "architecture": Setting("UNet", show=_plain),
    "time_distribution": Setting("training times t", show=lambda v: {"uniform": "uniform on [0, 1)",
                                                                    "logit_normal": "logit-normal, sigmoid(N(0, 1))"}
                                 .get(v, _plain(v))),
}

# Part B's recipes by their field of PartBRecipes: what they train, and where it is shown.
RECIPES: dict[str, tuple[str, tuple[str, str]]] = {
    "denoiser": ("single-step denoiser (B1.2)", B1),
    "time_ddpm": ("time-conditioned DDPM (B2.2)", B2),
    "class_ddpm": ("class-conditioned DDPM (B2.4)", B3),
    "judge": ("the judge (an MNIST classifier beyond the write-up)", B2),
    "pure_noise": ("single-step denoiser fed pure noise (the course's current Part B)", B4),
    "time_flow": ("time-conditioned flow matching (the course's current Part B)", B4),
    "class_flow": ("class-conditioned flow matching (the course's current Part B)", B4),
    "time_flow_constant_lr": ("time-conditioned flow matching at a constant learning rate (the course's question)", B4),
}

SHOWCASE_SETTINGS: dict[str, Setting] = {
    "denoiser_digits": Setting("test digits shown per checkpoint (B1.2)", B1),
    "metric_images": Setting("test digits behind the PSNR / SSIM table (B1)", B1),
    "time_samples": Setting("samples shown per checkpoint (B2.3)", B2),
    "per_class_grid": Setting("samples of each digit shown per checkpoint (B2.5)", B3),
    "sweep_scales": Setting("guidance scales of the sweep (B2.5)", B3, lambda v: ", ".join(f"{x:g}" for x in v)),
    "sweep_stride": Setting("the sweep samples every n-th of the T steps (B2.5)", B3),
    "gif_frame_every": Setting("reverse-process animation: a frame every n steps", B2),
    "sample_batch": Setting("images per network call", B2),
    "judge_samples": Setting("samples the judge scores per model and checkpoint", B2),
    "score_steps": Setting("steps of the scored samples' sampler", B2,
                           lambda v: "all T (Part B's sampler)" if v is None else f"{v} (Part A's strided sampler)"),
    "score_corrector_snr": Setting("the last checkpoint's scores also sample with half the steps and a Langevin "
                                   "corrector of this signal-to-noise ratio", B2, lambda v: "no" if v is None else f"r = {v:g}"),
    "score_matched_start": Setting("the last checkpoint's scores also sample from the matched start (x_T with "
                                   "q(x_T)'s mean and covariance)", B2, lambda v: "yes" if v else "no"),
}


# --- comparing ------------------------------------------------------------------------------------

def _label(name: str) -> Setting:
    return Setting(name.replace("_", " "))


def compare_fields(write_up: Any, build: Any, settings: dict[str, Setting], group: str,
                   where: tuple[str, str] | None = None) -> Comparison:
    """Rows for the fields of two dataclasses of one type whose values differ; prose fields are left out.
    A field that applies to neither side is not compared, and one that applies to one side only
    reads "—" on the other. `where` overrides each setting's page."""
    rows, agreeing = [], 0
    names = [f.name for f in fields(build)] if build is not None else [f.name for f in fields(write_up)]
    for name in names:
        if _is_prose(name):
            continue
        setting = settings.get(name) or _label(name)
        old = getattr(write_up, name, None) if write_up is not None else None
        new = getattr(build, name, None) if build is not None else None
        old_applies = write_up is not None and setting.applies(write_up)
        new_applies = build is not None and setting.applies(build)
        if not (old_applies or new_applies):
            continue
        if old_applies and new_applies and old == new:
            agreeing += 1
            continue
        page, section = where or setting.where
        rows.append(Deviation(group, setting.label,
                              setting.show(old) if old_applies else "—",
                              setting.show(new) if new_applies else "—", page, section))
    return Comparison(tuple(rows), agreeing)


def combined(*comparisons: Comparison) -> Comparison:
    return Comparison(tuple(row for c in comparisons for row in c.rows), sum(c.agreeing for c in comparisons))


def part_a_deviations(write_up_plan: PartAPlan, build_plan: PartAPlan,
                      build_model: ModelFacts, write_up_model: ModelFacts = WRITE_UP_MODEL) -> Comparison:
    """Part A: the model this build runs against DeepFloyd IF's, then the plan against the write-up's."""
    return combined(
        compare_fields(write_up_model, build_model, MODEL_SETTINGS, "the model"),
        compare_fields(write_up_plan, build_plan, PLAN_SETTINGS, "the plan"),
    )


def guidance_deviation(sweep_scales: tuple[float, ...]) -> Comparison:
    """The one place where the course recipe itself differs from the write-up: B2.5's guidance,
    with whether the build's sweep (`sweep_scales`) holds the write-up's g."""
    if WRITE_UP_GUIDANCE == COURSE_GUIDANCE:
        return Comparison((), 1)
    swept = "in" if WRITE_UP_GUIDANCE in sweep_scales else "not in"
    return Comparison((Deviation(RECIPES["class_ddpm"][0], "guidance scale g of the samples (B2.5)",
                                 f"{WRITE_UP_GUIDANCE:g} (the course recipe: {COURSE_GUIDANCE:g})",
                                 f"{COURSE_GUIDANCE:g}, {WRITE_UP_GUIDANCE:g} {swept} the sweep "
                                 f"(g = {scales_text(sweep_scales)})", *B3),), 0)


def part_b_deviations(course: Profile, build: Profile) -> Comparison:
    """Part B: every training recipe of the build's profile against the course recipe (`full`)."""
    parts = []
    for field in fields(course.partb):
        old, new = getattr(course.partb, field.name), getattr(build.partb, field.name)
        if not (is_dataclass(old) or is_dataclass(new)):
            continue
        group, where = RECIPES.get(field.name, (field.name.replace("_", " "), NOWHERE))
        parts.append(compare_fields(old, new, RECIPE_SETTINGS, group, where))
    return combined(*parts, guidance_deviation(build.showcase.sweep_scales))


SHOWCASE_GROUPS: dict[str, tuple[str, dict[str, Setting]]] = {
    "showcase": ("the Part B pages", SHOWCASE_SETTINGS),
    "flow": ("flow matching", {
        "sampler": Setting("ODE sampler of the figures", B4, _plain),
        "steps": Setting("its steps", B4),
        "compare_evaluations": Setting("network evaluations per sample compared", B5),
        "compare_samples": Setting("samples per compared point", B5),
        "compare_grid_evaluations": Setting("evaluation counts shown side by side", B5),
        "compare_seeds": Setting("sampling seeds per compared point", B5),
    }),
}


def showcase_deviations(reference: Profile, build: Profile) -> Comparison:
    """What the pages show and measure (sample counts, sweeps), against the `full` profile's:
    the write-up fixes few of these, so the reference is the profile that follows it."""
    parts = []
    for field in fields(reference):
        old, new = getattr(reference, field.name), getattr(build, field.name)
        if field.name == "partb" or not is_dataclass(new):
            continue
        group, settings = SHOWCASE_GROUPS.get(field.name, (field.name.replace("_", " "), {}))
        parts.append(compare_fields(old, new, settings, group))
    return combined(*parts)


# --- laying them out ------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _link(row: Deviation, from_page: str, pages: set[str] | None) -> str:
    if not row.page or (pages is not None and row.page not in pages):
        return "—"
    return f"[{row.section}]({posixpath.relpath(row.page, posixpath.dirname(from_page) or '.')})"


def deviations_table(comparison: Comparison, from_page: str, write_up_header: str = "write-up",
                     pages: set[str] | None = None) -> str:
    """A Markdown table of the rows (what, setting, write-up, this build, shown in), links relative
    to `from_page`; a page not in `pages` (when given: the pages this build rendered) is not linked."""
    if not comparison.rows:
        return ""
    lines = [f"| | setting | {write_up_header} | this build | shown in |", "|---|---|---|---|---|"]
    previous = None
    for row in comparison.rows:
        group = row.group if row.group != previous else ""
        previous = row.group
        lines.append(f"| {_cell(group)} | {_cell(row.setting)} | {_cell(row.write_up)} | {_cell(row.build)} | "
                     f"{_link(row, from_page, pages)} |")
    return "\n".join(lines) + "\n"


def agreement_text(comparison: Comparison, what: str) -> str:
    """"All 31 values of X agree." / "12 of the 31 values of X differ, listed below; the other 19 agree." """
    if not comparison.rows:
        return f"All {comparison.compared} values of {what} agree."
    differ = "differs" if len(comparison.rows) == 1 else "differ"
    agree = "agrees" if comparison.agreeing == 1 else "agree"
    return (f"{len(comparison.rows)} of the {comparison.compared} values of {what} {differ}, listed below; "
            f"the other {comparison.agreeing} {agree}.")


def summary_line(comparison: Comparison, first: int = 3) -> str:
    """The first `first` settings that differ, as "setting: this build's (write-up: the write-up's)"
    (a setting that differs in several groups, such as the width of each Part B model, once with
    each distinct value), and how many values differ in all."""
    if not comparison.rows:
        return f"all {comparison.compared} compared values as the write-up has them"
    by_setting: dict[str, tuple[list[str], list[str]]] = {}
    for row in comparison.rows:
        builds, write_ups = by_setting.setdefault(row.setting, ([], []))
        builds.append(row.build) if row.build not in builds else None
        write_ups.append(row.write_up) if row.write_up not in write_ups else None
    shown = [f"{setting}: {' / '.join(builds)} (write-up: {' / '.join(write_ups)})"
             for setting, (builds, write_ups) in list(by_setting.items())[:first]]
    return "; ".join(shown) + f"; {len(comparison.rows)} of {comparison.compared} values differ in all"


# --- devices: which the code supports and which have run on hardware -------------------------------

# Each device type the build accepts (runcache.context.DEVICE_ORDER), in words, with its values.
DEVICE_NAMES = {"cuda": ("CUDA", "`cuda`, `cuda:N`"), "mps": ("MPS (Apple silicon)", "`mps`"), "cpu": ("CPU", "`cpu`")}
# What to run on a device no build or measurement has run on, and what to report.
HARDWARE_CHECK = {
    "mps": "`make site` on an Apple-silicon Mac, then report the Build page's device line",
    "cuda": "`make site` on a machine with an NVIDIA GPU, then report the Build page's device line",
    "cpu": "`make site`, then report the Build page's device line",
}


@dataclass(frozen=True)
class DeviceStatus:
    """One device type the code supports: how it is asked for, its precision rule, and the
    hardware it has run on (device lines with where they come from); none: untested."""

    device_type: str
    ran_on: tuple[str, ...]

    @property
    def tested(self) -> bool:
        return bool(self.ran_on)


def device_type_of(description: str) -> str:
    """The device type of a manifest's device line: "cuda (NVIDIA H200; bf16 autocast)" -> "cuda"."""
    return description.split("(")[0].split(":")[0].strip()


def devices_ran(ctx: BuildContext) -> list[tuple[str, str]]:
    """(device line, where) of this build and of every run kept in measurements/."""
    return [(ctx.device_description, "this build")] + [
        (run.device, f"`measurements/{session.folder.name}`") for session in load_sessions() for run in session.runs]


def device_statuses(ran: Sequence[tuple[str, str]]) -> list[DeviceStatus]:
    """Every device type the code supports, in the default order, with the hardware it ran on:
    `ran` holds (device line, where: "this build" or a measurement folder) pairs; each distinct
    line is kept once, with the first place it was seen."""
    statuses = []
    for device_type in DEVICE_ORDER:
        seen: dict[str, str] = {}
        for description, where in ran:
            if device_type_of(description) == device_type:
                seen.setdefault(description, where)
        statuses.append(DeviceStatus(device_type, tuple(f"{line} ({where})" for line, where in seen.items())))
    return statuses


def untested_line(status: DeviceStatus) -> str:
    """"MPS (Apple silicon) is supported by the code but untested on hardware ... run ..."."""
    name = DEVICE_NAMES[status.device_type][0]
    return (f"{name} is supported by the code ({DEVICE_NAMES[status.device_type][1]}) but untested on hardware: "
            f"no build or measurement in this repository has run on it yet. To test it, run "
            f"{HARDWARE_CHECK[status.device_type]}.")


def devices_markdown(statuses: Sequence[DeviceStatus]) -> str:
    """The Devices section's body: a line for each untested device type, then a table of every
    device type, its values, its precision rule and the hardware it has run on."""
    lines = [untested_line(status) for status in statuses if not status.tested]
    if not lines:
        lines = [f"All {len(statuses)} device types the code supports have run on hardware."]
    rows = ["| device | `DIFFUSION_LAB_DEVICE` | precision of Part B's networks (`auto`) | run on hardware |",
            "|---|---|---|---|"]
    for status in statuses:
        name, values = DEVICE_NAMES[status.device_type]
        ran = "; ".join(status.ran_on) if status.tested else "**not yet**"
        rows.append(f"| {name} | {values} | {_cell(PRECISION_RULES[status.device_type])} | {_cell(ran)} |")
    return "\n\n".join(lines) + "\n\n" + "\n".join(rows) + "\n"
