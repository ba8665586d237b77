"""The Deviations page's rows and the home page's gallery, from the configuration data alone."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import pytest

from diffusion_lab.experiments.parta_backend import backend_for
from diffusion_lab.experiments.parta_plan import PartAPlan, plan_for
from diffusion_lab.mnist.recipes import PartBRecipes
from diffusion_lab.profiles import PROFILES, Profile, get_profile
from diffusion_lab.report import deviations, gallery
from diffusion_lab.report.partb_figures import guidance_in_sweep_text
from diffusion_lab.report.deviations import (
    PLAN_SETTINGS,
    RECIPE_SETTINGS,
    WRITE_UP_MODEL,
    Comparison,
    Deviation,
    agreement_text,
    compare_fields,
    deviations_table,
    model_facts,
    part_a_deviations,
    part_b_deviations,
    showcase_deviations,
    summary_line,
)


def _recipes(profile: Profile) -> dict[str, object]:
    return {f.name: getattr(profile.partb, f.name) for f in fields(PartBRecipes)
            if hasattr(getattr(profile.partb, f.name), "__dataclass_fields__")}


def _rows_of(comparison: Comparison, group: str) -> set[str]:
    return {row.setting for row in comparison.rows if row.group == group}


def test_a_changed_recipe_lists_exactly_the_changed_fields():
    full = get_profile("full")
    time_ddpm = replace(full.partb.time_ddpm, epochs=3, batch_size=64)
    denoiser = replace(full.partb.denoiser, train_subset=8_000)
    build = replace(full, name="test", partb=replace(full.partb, time_ddpm=time_ddpm, denoiser=denoiser))
    comparison = part_b_deviations(full, build)
    assert _rows_of(comparison, deviations.RECIPES["time_ddpm"][0]) == {"epochs", "batch size"}
    assert _rows_of(comparison, deviations.RECIPES["denoiser"][0]) == {"training digits"}
    assert _rows_of(comparison, deviations.RECIPES["class_ddpm"][0]) <= {"guidance scale g of the samples (B2.5)"}
    epochs = next(row for row in comparison.rows if row.setting == "epochs")
    assert (epochs.write_up, epochs.build, epochs.page) == ("20", "3", "part-b/time-conditioned-ddpm.md")
    subset = next(row for row in comparison.rows if row.setting == "training digits")
    assert (subset.write_up, subset.build) == ("all 60,000", "8,000")


def test_the_full_profile_deviates_only_where_the_write_up_and_the_course_disagree():
    full = get_profile("full")
    comparison = part_b_deviations(full, full)
    assert [row.setting for row in comparison.rows] == ["guidance scale g of the samples (B2.5)"]
    assert showcase_deviations(full, full).rows == ()


@pytest.mark.parametrize("profile", ["quick", "tiny"])
def test_rows_for_a_profile_are_its_changed_fields_and_only_those(profile):
    """Against the course recipe: a row for every field whose value (or whether it applies)
    differs, none for any other, and every compared field counted once."""
    full, build = get_profile("full"), get_profile(profile)
    comparison = part_b_deviations(full, build)
    for name, course_recipe in _recipes(full).items():
        build_recipe = getattr(build.partb, name)
        group = deviations.RECIPES[name][0]
        listed = _rows_of(comparison, group)
        for f in fields(build_recipe):
            if deviations._is_prose(f.name):
                continue
            setting = RECIPE_SETTINGS[f.name]
            old_applies, new_applies = setting.applies(course_recipe), setting.applies(build_recipe)
            differs = (old_applies != new_applies
                       or (old_applies and getattr(course_recipe, f.name) != getattr(build_recipe, f.name)))
            assert (setting.label in listed) == differs, (name, f.name)
    assert comparison.rows, f"{profile} should differ from the course recipe"


def test_quick_against_full_names_the_recipe_changes_on_the_page():
    comparison = part_b_deviations(get_profile("full"), get_profile("quick"))
    widths = {row.group: (row.write_up, row.build) for row in comparison.rows if row.setting == "width D (hidden channels)"}
    assert widths[deviations.RECIPES["denoiser"][0]] == ("128", "32")
    assert widths[deviations.RECIPES["time_ddpm"][0]] == ("64", "32")
    table = deviations_table(comparison, "deviations.md", "write-up (course recipe)")
    assert "| width D (hidden channels) | 128 | 32 | [B1](part-b/single-step-denoiser.md) |" in table


def test_every_field_has_a_name_on_the_page():
    """A new plan, recipe or showcase field must be named here, or the page would show its identifier."""
    unnamed = [f.name for f in fields(PartAPlan) if not deviations._is_prose(f.name) and f.name not in PLAN_SETTINGS]
    for recipe in _recipes(get_profile("full")).values():
        unnamed += [f.name for f in fields(recipe) if not deviations._is_prose(f.name) and f.name not in RECIPE_SETTINGS]
    for f in fields(Profile):
        value = getattr(get_profile("full"), f.name)
        if f.name != "partb" and hasattr(value, "__dataclass_fields__"):
            named = deviations.SHOWCASE_GROUPS.get(f.name, ("", {}))[1]
            unnamed += [g.name for g in fields(value) if g.name not in named]
    assert not unnamed


def test_part_a_on_the_mnist_plan_lists_every_changed_plan_value():
    write_up, build = plan_for("deepfloyd"), plan_for("mnist")
    comparison = part_a_deviations(write_up, build, WRITE_UP_MODEL)
    listed = _rows_of(comparison, "the plan")
    for f in fields(PartAPlan):
        if deviations._is_prose(f.name):
            continue
        changed = getattr(write_up, f.name) != getattr(build, f.name)
        assert (PLAN_SETTINGS[f.name].label in listed) == changed, f.name
    assert _rows_of(comparison, "the model") == set()  # the same model facts on both sides
    guidance = next(row for row in comparison.rows if row.setting.startswith("classifier-free guidance"))
    assert (guidance.write_up, guidance.build, guidance.section) == ("7", "5", "A1")


def test_the_write_up_plan_on_if_has_no_deviation():
    comparison = part_a_deviations(plan_for("deepfloyd"), plan_for("deepfloyd"), WRITE_UP_MODEL)
    assert comparison.rows == () and comparison.agreeing == comparison.compared > 20
    assert agreement_text(comparison, "Part A") == f"All {comparison.compared} values of Part A agree."


def test_the_write_ups_model_is_if_stage_one():
    assert WRITE_UP_MODEL.num_timesteps == 1000 and WRITE_UP_MODEL.sample_shape == (3, 64, 64)
    assert WRITE_UP_MODEL.timesteps[:2] == (990, 960) and WRITE_UP_MODEL.timesteps[-1] == 0
    assert "DeepFloyd/IF-I-XL-v1.0" in WRITE_UP_MODEL.model


def test_the_mnist_model_deviates_from_if(ctx):
    facts = model_facts(backend_for(ctx))  # tiny: nothing is trained to know these
    comparison = part_a_deviations(plan_for("deepfloyd"), plan_for("mnist"), facts)
    rows = {row.setting: row for row in comparison.rows if row.group == "the model"}
    assert rows["training timesteps T"].build == str(get_profile("tiny").partb.class_ddpm.num_timesteps)
    assert rows["sample size (channels × height × width)"].build == "1 × 28 × 28"
    assert rows["stage II upsampler"].build == "none"
    assert "MNIST" in rows["noise model"].build and "DeepFloyd" in rows["noise model"].write_up


def test_values_that_apply_to_one_side_only_read_as_a_dash():
    course = get_profile("full").partb.time_ddpm
    one_cycle = replace(course, lr_schedule="one_cycle")
    comparison = compare_fields(course, one_cycle, RECIPE_SETTINGS, "g")
    rows = {row.setting: (row.write_up, row.build) for row in comparison.rows}
    assert rows["learning-rate decay over training"] == ("0.1", "—")
    assert rows["share of steps spent warming up"] == ("—", "0.3")


def test_table_links_only_rendered_pages_relative_to_the_page():
    rows = (Deviation("g", "epochs", "20", "3", "part-b/time-conditioned-ddpm.md", "B2"),
            Deviation("g", "steps", "50", "5", "part-b/flow-matching.md", "B4"))
    table = deviations_table(Comparison(rows, 0), "part-a/deviations.md", pages={"part-b/time-conditioned-ddpm.md"})
    assert "[B2](../part-b/time-conditioned-ddpm.md)" in table
    assert "flow-matching" not in table and table.splitlines()[-1].endswith("| — |")  # no such page here
    assert table.count("| g |") == 1  # the group is named once


def test_summary_line_merges_a_setting_across_models():
    rows = (Deviation("a", "epochs", "5", "2", "", ""), Deviation("b", "epochs", "20", "2", "", ""),
            Deviation("b", "width", "64", "32", "", ""))
    assert summary_line(Comparison(rows, 7), first=1) == "epochs: 2 (write-up: 5 / 20); 3 of 10 values differ in all"
    assert summary_line(Comparison((), 7)) == "all 7 compared values as the write-up has them"


# --- the gallery ----------------------------------------------------------------------------------

@dataclass
class FakePage:
    path: str
    title: str
    figure_assets: list[str] = field(default_factory=list)


def test_headline_is_the_figure_just_added_and_the_first_per_page_wins():
    gallery.take_headlines()
    page = FakePage("part-a/editing.md", "A2. Editing", ["part-a/img/editing/figure-1.png"])
    gallery.headline(page)
    page.figure_assets.append("part-a/img/editing/figure-2.png")
    gallery.headline(page)  # a call in a loop of figures keeps the loop's first
    other = FakePage("part-b/unet.md", "B1.1", ["part-b/img/unet/figure-1.png", "part-b/img/unet/figure-2.png"])
    gallery.headline(other)
    taken = gallery.take_headlines()
    assert [(h.page, h.image, h.number) for h in taken] == [
        ("part-a/editing.md", "part-a/img/editing/figure-1.png", 1),
        ("part-b/unet.md", "part-b/img/unet/figure-2.png", 2),
    ]
    assert gallery.take_headlines() == []
    markdown = gallery.gallery_markdown(taken, "index.md")
    assert "[![A2. Editing](part-a/img/editing/figure-1.png){ .no-lightbox loading=lazy }]" \
           "(part-a/editing.md#__figure-caption_1)" in markdown
    assert "(part-b/unet.md#__figure-caption_2)" in markdown and markdown.startswith('<div class="grid cards gallery"')


def test_a_page_without_figures_has_no_headline():
    with pytest.raises(ValueError, match="no figure"):
        gallery.headline(FakePage("x.md", "X"))


def test_every_profile_is_compared():
    for name in PROFILES:
        assert part_b_deviations(get_profile("full"), get_profile(name)).compared > 40


# --- devices --------------------------------------------------------------------------------------

def test_mps_is_supported_but_untested_until_a_build_or_measurement_ran_on_it():
    ran = [("cpu (AMD EPYC 9654, AVX-512 BF16; bf16 autocast; 1 thread)", "this build"),
           ("cuda (NVIDIA H200)", "`measurements/2026-11-30-h200-full`"),
           ("cuda (NVIDIA H200)", "`measurements/2026-11-30-h200-full`")]
    statuses = deviations.device_statuses(ran)
    assert [(s.device_type, s.tested) for s in statuses] == [("cuda", True), ("mps", False), ("cpu", True)]
    assert statuses[0].ran_on == ("cuda (NVIDIA H200) (`measurements/2026-11-30-h200-full`)",)  # once
    markdown = deviations.devices_markdown(statuses)
    first = markdown.splitlines()[0]
    assert first.startswith("MPS (Apple silicon) is supported by the code (`mps`) but untested on hardware")
    assert "run `make site` on an Apple-silicon Mac, then report the Build page's device line" in first
    assert "| MPS (Apple silicon) | `mps` | fp32 (bf16 autocast on MPS is partial" in markdown
    assert markdown.splitlines()[-2].endswith("| **not yet** |")  # the MPS row, before the CPU's
    assert "CUDA is supported by the code" not in markdown and "CPU is supported" not in markdown


def test_a_build_on_mps_counts_as_run_on_hardware():
    statuses = deviations.device_statuses([("mps (Apple M2; fp32)", "this build")])
    markdown = deviations.devices_markdown(statuses)
    assert "MPS (Apple silicon) is supported" not in markdown
    assert "| mps (Apple M2; fp32) (this build) |" in markdown
    assert "CUDA is supported by the code (`cuda`, `cuda:N`) but untested on hardware" in markdown


def test_the_repositorys_gpu_session_is_cuda_evidence():
    from diffusion_lab.report.gpu_measurements import load_sessions

    ran = [(run.device, session.folder.name) for session in load_sessions() for run in session.runs]
    cuda = next(s for s in deviations.device_statuses(ran) if s.device_type == "cuda")
    assert cuda.tested and any("NVIDIA" in line for line in cuda.ran_on)


@pytest.mark.parametrize("line, device_type", [
    ("cpu (2 threads)", "cpu"), ("cuda (NVIDIA H200; bf16 autocast)", "cuda"), ("mps (Apple M2; fp32)", "mps"),
    ("cuda:1 (NVIDIA A100)", "cuda"),
])
def test_the_device_type_of_a_manifest_line(line, device_type):
    assert deviations.device_type_of(line) == device_type


# The sentences about B2.5's guidance, rendered for each profile and held to its sweep: tiny sweeps
# 0, 1 and 5, quick 1, 1.5 and 5, full everything from 0 to 10 (0.5 included).
GUIDANCE_SENTENCES = {
    "tiny": ("The sweep below (g = 0, 1 and 5) has 5 but not 0.5.", "5, 0.5 not in the sweep (g = 0, 1 and 5)"),
    "quick": ("The sweep below (g = 1, 1.5 and 5) has 5 but not 0.5.", "5, 0.5 not in the sweep (g = 1, 1.5 and 5)"),
    "full": ("Both are in the sweep below (g = 0, 0.5, 1, 1.5, 2, 3, 5, 7 and 10).",
             "5, 0.5 in the sweep (g = 0, 0.5, 1, 1.5, 2, 3, 5, 7 and 10)"),
}


@pytest.mark.parametrize("name", sorted(GUIDANCE_SENTENCES))
def test_the_guidance_sentences_follow_each_profiles_sweep(name):
    scales = get_profile(name).showcase.sweep_scales
    page_sentence, deviation_cell = GUIDANCE_SENTENCES[name]
    assert guidance_in_sweep_text(scales) == page_sentence
    (row,) = deviations.guidance_deviation(scales).rows
    assert row.build == deviation_cell


def test_the_guidance_sentence_names_what_the_sweep_lacks():
    assert guidance_in_sweep_text((0.5, 1.0)) == "The sweep below (g = 0.5 and 1) has 0.5 but not 5."
    assert guidance_in_sweep_text((2.0,)) == "Neither is in the sweep below (g = 2)."
