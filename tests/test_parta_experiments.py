"""Part A runs on the tiny profile: repeatable per seed, the plans as data, inputs, the backends."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from diffusion_lab.backends.deepfloyd_prompts import COURSE_PROMPTS
from diffusion_lab.backends.mnist import parse_prompt
from diffusion_lab.experiments import parta, parta_illusions, parta_stock
from diffusion_lab.experiments.parta_backend import MnistPartA, backend_for
from diffusion_lab.experiments.parta_inputs import input_identity, load_input
from diffusion_lab.experiments.parta_plan import (
    DEEPFLOYD_PLAN,
    FILE,
    MNIST_PLAN,
    PLANS,
    InputImage,
    plan_for,
)
from diffusion_lab.experiments.parta_upsample import upsampled
from diffusion_lab.illusions import VIEWS
from diffusion_lab.runcache.context import BuildContext

REPO = Path(__file__).resolve().parents[1]


def _ctx(cache: Path, seed: int = 0, profile: str = "tiny", backend: str = "mnist") -> BuildContext:
    return BuildContext(profile=profile, backend=backend, device=torch.device("cpu"), seed=seed,
                        cache_dir=cache, force=False)


# --- repeatability --------------------------------------------------------------------------------

PLAN = MNIST_PLAN
RUNS = {
    "forward-process": (lambda c, h: parta.forward_process(c, PLAN, h), "forward.pt"),
    "one-step": (lambda c, h: parta.one_step(c, PLAN, h), "one_step.pt"),
    "iterative": (lambda c, h: parta.iterative(c, PLAN, h), "iterative.pt"),
    "samples": (lambda c, h: parta.unconditional_samples(c, PLAN, h), "samples.pt"),
    "cfg-samples": (lambda c, h: parta.cfg_samples(c, PLAN, h), "samples.pt"),
    "sdedit": (lambda c, h: parta.sdedit(c, PLAN, h, PLAN.drawn_images[0]), "sdedit.pt"),
    "inpaint": (lambda c, h: parta.inpaint(c, PLAN, h, PLAN.inpaintings[0]), "inpaint.pt"),
    "text-image-to-image": (lambda c, h: parta.text_image_to_image(c, PLAN, h, PLAN.text_edits[0]), "sdedit.pt"),
    "anagram": (lambda c, h: parta_illusions.anagram(c, PLAN, h, PLAN.anagrams[0]), "anagram.pt"),
    # the sweep before the hybrid, which runs it first (the repeat test needs a first computation)
    "hybrid-sweep": (lambda c, h: parta_illusions.hybrid_sweep(c, PLAN, h), "sweep.pt"),
    "hybrid": (lambda c, h: parta_illusions.hybrid(c, PLAN, h, PLAN.hybrids[0]), "hybrid.pt"),
    "stock-pipeline": (lambda c, h: parta_stock.stock_samples(c, PLAN, h), "stock.pt"),
}


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for key in sorted(value, key=str) for t in _tensors(value[key])]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    return []


def _untimed(metrics: dict) -> dict:
    """Metrics without wall-clock measurements, which no seed repeats."""
    return {key: value for key, value in metrics.items() if key != "timing"}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Two caches built with seed 0 (the second retrains from nothing), and seed 1 on the first
    cache's models: the same model, only the runs' own draws differ."""
    root = tmp_path_factory.mktemp("parta")
    first, second, other = _ctx(root / "a"), _ctx(root / "b"), _ctx(root / "a", seed=1)
    handle = backend_for(first)
    return (first, handle), (second, backend_for(second)), (other, handle)


@pytest.mark.parametrize("name", list(RUNS))
def test_runs_repeat_for_a_seed_and_differ_for_another(name, builds):
    run, filename = RUNS[name]
    (first, handle), (second, handle_2), (other, _) = builds
    a, b, c = run(first, handle), run(second, handle_2), run(other, handle)
    assert not b.hit and a.key == b.key and a.dir != b.dir
    tensors_a, tensors_b, tensors_c = (_tensors(r.load(filename)) for r in (a, b, c))
    assert tensors_a and all(torch.equal(x, y) for x, y in zip(tensors_a, tensors_b, strict=True))
    assert _untimed(a.metrics) == _untimed(b.metrics)
    assert c.params.get("model") == a.params.get("model"), "seed 1 reuses the seed-0 model: only its draws change"
    assert any(not torch.equal(x, y) for x, y in zip(tensors_a, tensors_c, strict=True))


def test_a_run_is_a_cache_hit_the_second_time(builds):
    (first, handle), _, _ = builds
    assert parta.sdedit(first, PLAN, handle, PLAN.sdedit_images[0]).hit is False
    assert parta.sdedit(first, PLAN, handle, PLAN.sdedit_images[0]).hit is True


def test_inpainting_keeps_the_original_outside_the_mask(builds):
    (first, handle), _, _ = builds
    stored = parta.inpaint(first, PLAN, handle, PLAN.inpaintings[1]).load("inpaint.pt")
    keep = stored["mask"] == 0
    assert keep.any() and (~keep).any()
    assert torch.equal(stored["result"][keep], stored["original"][keep])


def test_stock_samples_are_judged_at_each_step_count(builds):
    (first, handle), _, _ = builds
    run = parta_stock.stock_samples(first, PLAN, handle)
    stored = run.load("stock.pt")
    assert run.params["steps"] == [20] and run.metrics["capped_steps"] == [300]  # the tiny profile's T = 20
    assert stored["stage1"][20].shape == (len(parta_stock.stock_prompts(PLAN)), 1, 28, 28)
    assert stored["stage2"] == {}  # no upsampler for MNIST
    assert 0.0 <= run.metrics["rows"][0]["judge_accuracy"] <= 1.0


def test_upsampling_needs_a_stage_two(builds):
    (first, handle), _, _ = builds
    source = parta.unconditional_samples(first, PLAN, handle)
    with pytest.raises(ValueError, match="no stage II"):
        upsampled(first, handle, source, source.load("samples.pt")["samples"], [""] * PLAN.num_samples)


def test_tiny_models_skip_the_i_starts_they_lack_and_extend_after_the_rest(builds):
    (first, handle), _, _ = builds
    run = parta.sdedit(first, PLAN, handle, PLAN.sdedit_images[0])
    assert len(handle.timesteps) == 20 and run.metrics["skipped_i_starts"] == [20]
    assert run.params["extension"] == [12, 14, 16, 18]  # every 2nd after the write-up's last kept, 10
    assert sorted(run.load("sdedit.pt")["edits"]) == [1, 3, 5, 7, 10, 12, 14, 16, 18]
    shown = run.metrics["shown_i_starts"]
    similarity = {int(i): r for i, r in run.metrics["similarity"].items()}
    assert shown == parta.shown_i_starts([1, 3, 5, 7, 10], [12, 14, 16, 18], similarity, PLAN.sdedit_resemblance)
    assert all(-1.0 <= r <= 1.0 for r in similarity.values())
    assert set(run.metrics["judge"]["edits"]) == {str(i) for i in similarity}


def test_the_extension_follows_the_write_ups_i_starts_to_the_last_timestep():
    assert parta.sdedit_extension(PLAN, [1, 3, 5, 7, 10, 20], 34) == [22, 24, 26, 28, 30, 32]
    assert parta.sdedit_extension(PLAN, [1, 3, 5, 7, 10], 20) == [12, 14, 16, 18]
    assert parta.sdedit_extension(PLAN, [1, 3], 4) == []


def test_the_shown_i_starts_stop_at_the_first_edit_that_resembles_its_input():
    write_up, extension = [1, 3, 5], [7, 9, 11]
    similarity = {1: 0.1, 3: 0.4, 5: 0.6, 7: 0.85, 9: 0.93, 11: 0.99}
    assert parta.shown_i_starts(write_up, extension, similarity, 0.9) == [1, 3, 5, 7, 9]
    # the write-up's last already resembles its input: nothing added, however the rest compares
    assert parta.shown_i_starts(write_up, extension, {**similarity, 5: 0.95, 7: 0.2}, 0.9) == [1, 3, 5]
    # none does: the whole extension is shown
    assert parta.shown_i_starts(write_up, extension, {i: 0.5 for i in similarity}, 0.9) == [1, 3, 5, 7, 9, 11]
    # only the write-up's last decides: an earlier one that resembles it does not stop the extension
    assert parta.shown_i_starts(write_up, extension, {**similarity, 3: 0.97}, 0.9) == [1, 3, 5, 7, 9]


def test_the_hybrid_setting_is_the_one_with_most_working_candidates_then_score_then_smaller_sigma():
    def row(sigma, works, score):
        return {"sigma": sigma, "kernel_size": 2 * round(8 * sigma) + 1, "both_count": works, "mean_score": score}

    rows = [row(0.875, 0, 0.0), row(1.5, 3, 0.4), row(1.75, 3, 0.5), row(2.0, 1, 0.9)]
    assert parta_illusions.pick_hybrid_setting(rows)["sigma"] == 1.75  # 3 work twice: the higher score
    assert parta_illusions.pick_hybrid_setting(rows[:2] + [row(2.0, 4, 0.1)])["sigma"] == 2.0  # most work wins
    tied = [row(1.25, 2, 0.3), row(1.0, 2, 0.3), row(1.5, 2, 0.3)]
    assert parta_illusions.pick_hybrid_setting(tied)["sigma"] == 1.0
    assert parta_illusions.pick_hybrid_setting([row(1.0, 0, 0.01), row(2.0, 0, 0.2)])["sigma"] == 2.0


def test_the_hybrids_take_their_setting_from_the_sweeps_pick(builds):
    (first, handle), _, _ = builds
    sweep = parta_illusions.hybrid_sweep(first, PLAN, handle)
    assert len(sweep.metrics["rows"]) == len(PLAN.hybrids) * len(PLAN.hybrid_sweep_sigmas)
    for pair, spec in enumerate(PLAN.hybrids):
        rows = [row for row in sweep.metrics["rows"] if row["pair"] == pair]
        assert sweep.metrics["selected"][pair] == parta_illusions.pick_hybrid_setting(rows)
        run = parta_illusions.hybrid(first, PLAN, handle, spec)
        picked = sweep.metrics["selected"][pair]
        assert (run.params["kernel_size"], run.params["sigma"]) == (picked["kernel_size"], picked["sigma"])
        assert run.params["setting_from"] == sweep.key
    images = sweep.load("sweep.pt")["images"]
    assert sorted(images) == sorted(str(s) for s in PLAN.hybrid_sweep_sigmas)
    assert images["2.0"].shape == (len(PLAN.hybrids) * PLAN.hybrid_sweep_candidates, 1, 28, 28)


def test_without_a_sweep_the_hybrids_use_the_scaled_kernel(tmp_path):
    plan = dataclasses.replace(PLAN, hybrid_sweep_sigmas=())
    handle = MnistPartA(_ctx(tmp_path / "cache", profile="quick"))
    assert parta_illusions.hybrid_sweep(_ctx(tmp_path / "cache"), plan, handle) is None
    assert parta_illusions.hybrid_setting(plan, handle, plan.hybrids[0], None) == (15, 0.875)
    assert not (tmp_path / "cache").exists()


def test_judge_verdicts_are_recorded_for_every_candidate(builds):
    (first, handle), _, _ = builds
    judge = parta_illusions.anagram(first, PLAN, handle, PLAN.anagrams[0]).metrics["judge"]
    assert judge["targets"] == [6, 9]
    assert len(judge["candidates"]) == PLAN.illusion_candidates
    assert 0 <= judge["best"] < PLAN.illusion_candidates
    assert judge["both_count"] == sum(c["both"] for c in judge["candidates"])


def test_a_view_that_moves_the_data_range_says_where_to(builds):
    (first, handle), _, _ = builds
    negated = next(spec for spec in PLAN.anagrams if spec.view == "negate")
    assert parta_illusions.anagram(first, PLAN, handle, negated).metrics["view_range"] == [-1.0, -0.0]
    flipped = next(spec for spec in PLAN.anagrams if spec.view == "flip")
    assert parta_illusions.anagram(first, PLAN, handle, flipped).metrics["view_range"] is None


def test_view_statistics_measure_every_view_of_the_plan_and_the_blur(builds):
    (first, handle), _, _ = builds
    rows = {row["view"]: row for row in parta_illusions.view_statistics(first, PLAN, handle).metrics["rows"]}
    assert set(rows) == {spec.view for spec in PLAN.anagrams} | {"blur"}
    for name, row in rows.items():
        orthogonal = name != "blur"
        assert (row["orthogonality_error"] == 0.0) == orthogonal
        assert (abs(row["noise_std"] - 1) < 0.05) == orthogonal
    assert rows["negate"]["view_range"] == [-1.0, -0.0] and rows["patch"]["view_range"] is None


def test_judge_two_views_picks_the_candidate_best_in_both():
    probs_1 = torch.tensor([[0.0, 0.9, 0.1], [0.0, 0.6, 0.4], [0.0, 0.2, 0.8]])
    probs_2 = torch.tensor([[0.0, 0.9, 0.1], [0.0, 0.3, 0.7], [0.0, 0.1, 0.9]])
    verdict = parta_illusions.judge_two_views(probs_1, probs_2, target_1=1, target_2=2)
    assert [c["both"] for c in verdict["candidates"]] == [False, True, False]
    assert verdict["both_count"] == 1 and verdict["best"] == 1
    assert verdict["candidates"][2]["read_1"] == 2


# --- the plans, the inputs, the handles -------------------------------------------------------------


def test_plans_follow_the_write_up():
    for plan in PLANS.values():
        assert plan.i_starts == (1, 3, 5, 7, 10, 20)
        assert plan.noise_fractions == (0.25, 0.5, 0.75) and plan.iterative_i_start == 10
        assert len(plan.sdedit_images) == 3 and len(plan.drawn_images) == 3
        assert len(plan.inpaintings) >= 2 and len(plan.text_edits) == 3
        assert len(plan.hybrids) == 3
        assert all(a.view in VIEWS for a in plan.anagrams)
        # the write-up's three, and the fall 2025 course's views beyond the flip (four at least)
        assert {a.view for a in plan.anagrams} >= {"flip", "rot180", "rot90", "negate", "patch"}
        with pytest.raises(dataclasses.FrozenInstanceError):
            plan.guidance = 1.0
    assert DEEPFLOYD_PLAN.guidance == 7.0 and DEEPFLOYD_PLAN.generic_prompt == "a high quality photo"
    assert DEEPFLOYD_PLAN.stock_prompts == (
        "an oil painting of a snowy mountain village", "a man wearing a hat", "a rocket ship")
    for plan in PLANS.values():
        assert 20 in plan.stock_steps and len(set(plan.stock_steps)) >= 2
    assert MNIST_PLAN.generic_prompt == ""
    anagrams = [(a.prompt_1, a.prompt_2, a.view) for a in MNIST_PLAN.anagrams]
    assert ("a handwritten 6", "a handwritten 9", "rot180") in anagrams
    assert "flip" in [a.view for a in MNIST_PLAN.anagrams]
    with pytest.raises(ValueError, match="no Part A plan"):
        plan_for("stable-diffusion")


def _prompts(plan):
    return ({plan.generic_prompt, *plan.cfg_prompts} | {e.prompt for e in plan.text_edits}
            | {p for a in plan.anagrams for p in (a.prompt_1, a.prompt_2)}
            | {p for h in plan.hybrids for p in (h.far, h.near)})


def test_every_prompt_is_understood_by_its_backend():
    for prompt in _prompts(MNIST_PLAN):
        parse_prompt(prompt)
    assert _prompts(DEEPFLOYD_PLAN) <= set(COURSE_PROMPTS), "the course's precomputed embeddings cover them"


def test_every_input_loads():
    plan_inputs = [MNIST_PLAN.test_image, MNIST_PLAN.if_schedule_photo, *MNIST_PLAN.drawn_images,
                   *(p.mask for p in MNIST_PLAN.inpaintings), *(e.image for e in MNIST_PLAN.text_edits)]
    for image in plan_inputs:
        picture, _ = load_input(image, 1)
        assert picture.shape == (1, 28, 28) or image is MNIST_PLAN.if_schedule_photo
        assert 0.0 <= picture.min() and picture.max() <= 1.0
    photo, _ = load_input(MNIST_PLAN.if_schedule_photo, 3, 64)
    assert photo.shape == (3, 64, 64)


def test_editing_an_input_file_changes_its_identity(tmp_path):
    copy = tmp_path / "drawn.png"
    shutil.copy(REPO / "docs/inputs/hand-drawn-3.png", copy)
    image = InputImage("drawn", FILE, str(copy), "a copy")
    before = input_identity(image)
    copy.write_bytes(copy.read_bytes() + b"\0")
    assert input_identity(image)["sha256"] != before["sha256"]


def test_noise_levels_are_the_write_ups_for_if():
    assert parta.noise_timesteps(DEEPFLOYD_PLAN, 1000) == [250, 500, 750]
    assert parta.noise_timesteps(MNIST_PLAN, 300) == [75, 150, 225]


def test_mnist_handle_knows_its_timesteps_without_training(tmp_path):
    handle = MnistPartA(_ctx(tmp_path / "cache", profile="quick"))
    steps = handle.timesteps
    assert len(steps) == 34 and steps[:2] == [297, 288] and steps[-1] == 0
    assert not (tmp_path / "cache").exists()
    assert handle.sample_shape == (1, 28, 28)


def test_deepfloyd_branch_runs_the_same_experiments(tmp_path, monkeypatch):
    """backend_for builds DeepFloydBackend from the environment; a tiny random IF stands in."""
    from diffusion_lab.backends.tiny_if import save_tiny_if_pipeline

    settings = save_tiny_if_pipeline(tmp_path / "if", seed=0, with_stage2=False, stage1_size=16)
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    ctx = _ctx(tmp_path / "cache", backend="deepfloyd")
    handle = backend_for(ctx)
    assert handle.name == "deepfloyd" and handle.timesteps[:2] == [990, 960]
    plan = dataclasses.replace(DEEPFLOYD_PLAN, illusion_candidates=2)
    run = parta_illusions.anagram(ctx, plan, handle, plan.anagrams[0])
    images = run.load("anagram.pt")["images"]
    assert images.shape == (2, 3, 16, 16) and "judge" not in run.metrics
    for spec in plan.anagrams[1:]:  # every view runs on the IF's three-channel images
        stored = parta_illusions.anagram(ctx, plan, handle, spec).load("anagram.pt")
        assert torch.equal(VIEWS[spec.view].invert(stored["viewed"]), stored["images"])
    negate = parta_illusions.view_statistics(ctx, plan, handle).metrics["rows"]
    assert next(row for row in negate if row["view"] == "negate")["view_range"] is None  # IF's range is [-1, 1]
    assert run.params["model"]["settings"]["stage1"] == settings.stage1
