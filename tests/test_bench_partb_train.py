"""benchmarks/bench_partb_train.py: the recipe's step counts, that its steps (eager, and the step the
CUDA graph captures, run eagerly on the CPU) are steps of the package's `fit`, and a CPU smoke run
of the script's main."""

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from diffusion_lab import seeding
from diffusion_lab.mnist.data import MnistSplits
from diffusion_lab.mnist.training import RECIPE_RUNS, train_ddpm, train_denoiser, train_flow_matching
from diffusion_lab.profiles import PROFILES

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_partb_train.py"
_spec = importlib.util.spec_from_file_location("bench_partb_train", SCRIPT)
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # dataclasses look their module up there
_spec.loader.exec_module(bench)

CPU = torch.device("cpu")


def test_recipe_steps_are_epochs_times_batches_per_epoch():
    cases = bench.recipe_cases()
    assert set(cases) == set(RECIPE_RUNS)
    # DDPMs: 20 x ceil(60000 / 128); flow matching: 10 x ceil(60000 / 64); denoiser: 5 x ceil(60000 / 256)
    assert {name: case.recipe_steps for name, case in cases.items()} == {
        "time_ddpm": 9380, "class_ddpm": 9380, "time_flow": 9380, "class_flow": 9380, "denoiser": 1175}
    assert {name: case.tail_size for name, case in cases.items()} == {
        "time_ddpm": 96, "class_ddpm": 96, "time_flow": 32, "class_flow": 32, "denoiser": 96}
    assert [case.recipe.num_hiddens for case in cases.values()] == [64, 64, 64, 64, 128]


def test_cases_are_the_profiles_recipes():
    for profile in PROFILES:
        cases = bench.recipe_cases(profile=profile)
        assert {name: case.recipe for name, case in cases.items()} == {
            name: getattr(PROFILES[profile].partb, name) for name in bench.MODELS}
    quick = bench.recipe_cases(width=4, profile="quick")["class_ddpm"]
    assert quick.recipe.num_hiddens == 4 and quick.loss.min_snr_gamma == 5.0 and quick.loss.p_uncond == 0.1


def _fits_first_step(case: "bench.Case", digits: "bench.Digits", precision: str) -> dict[str, torch.Tensor]:
    """The weights after one step of the package's training entry point on the case's recipe
    (its model, loss and learning rate), seed 0, on exactly the digits of one batch."""
    recipe = dataclasses.replace(case.recipe, epochs=1, checkpoint_epochs=(1,), checkpoint_labels=("one step",),
                                 precision=precision, train_subset=None)
    data = MnistSplits(digits.images, digits.labels, digits.images[:1], digits.labels[:1])
    if case.name == "denoiser":
        result = train_denoiser(recipe, data, "cpu", seed=0, progress=False)
    else:
        train = train_ddpm if case.name.endswith("ddpm") else train_flow_matching
        result = train(recipe, data, "cpu", seed=0, conditional=case.name.startswith("class"), progress=False)
    assert len(result.losses) == 1
    return result.checkpoints[1]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", bench.MODELS)
def test_a_benchmark_step_is_a_step_of_fit(name, precision):
    """The eager variants' step and the step the CUDA-graph variant captures (its static buffers,
    run eagerly here) leave the model's weights exactly as one step of `fit` on the same recipe,
    seed and batch does."""
    case = bench.recipe_cases(width=4)[name]
    size = case.batch_size
    images = bench.Digits.random(CPU, n=size)
    # fit takes its one batch in the order of its seeded shuffle; the benchmark's digits in that order
    order = torch.randperm(size, generator=seeding.make_generator(0, f"{name}/shuffle"))
    digits = bench.Digits(images.images, images.labels, order)
    expected = _fits_first_step(case, digits, precision)

    eager, _ = bench.package_step(case, CPU, precision)
    bench.eager_stepper(eager, case, digits)(0)
    graphed, _ = bench.package_step(case, CPU, precision)
    graphed.autocast_cache = False
    static = bench.StaticStep(graphed, case, digits, bench.noise_generator(case), [size])
    static.load(size, 0)
    static.run(size)
    graphed.advance()

    for step in (eager, graphed):
        state = step.model.state_dict()
        assert state.keys() == expected.keys()
        for key, value in expected.items():
            assert torch.equal(state[key], value), key
    moved = [key for key, value in expected.items() if value.is_floating_point()
             and not torch.equal(value, bench.seeded(case.build, 0, f"{name}/init").state_dict()[key])]
    assert moved  # the step did change the weights
    if name.startswith("class"):  # the class dropout really was exercised
        assert 0 < int((static.buffers[size]["keep"] == 0).sum()) < size


def test_cpu_smoke_run_reports_rows(tmp_path):
    out = tmp_path / "bench.json"
    report = bench.main(["--device", "cpu", "--steps", "2", "--warmup", "1", "--width", "4",
                         "--models", "time_ddpm", "denoiser",
                         "--variants", "cuda_graph", "eager_bf16", "eager_fp32", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["rows"] == report["rows"] and saved["summary"] == report["summary"]
    assert {"device", "torch", "date", "git_commit"} <= saved.keys()
    # variant by variant, in the script's order whatever the order asked for
    assert [(row["variant"], row["model"]) for row in saved["rows"]] == [
        (variant, model) for variant in ("eager_fp32", "eager_bf16", "cuda_graph")
        for model in ("time_ddpm", "denoiser")]

    rows = {(row["model"], row["variant"]): row for row in saved["rows"]}
    for model, batch, steps in (("time_ddpm", 128, 9380), ("denoiser", 256, 1175)):
        for variant in ("eager_fp32", "eager_bf16"):
            row = rows[model, variant]
            assert row["status"] == "ok", row
            assert (row["batch_size"], row["recipe_steps"], row["width"], row["steps_timed"]) == (batch, steps, 4, 2)
            assert row["images_per_s"] > 0
            assert row["images_per_s"] == pytest.approx(batch * 1000 / row["ms_per_step"])
            assert row["projected_s"] == pytest.approx(steps * row["ms_per_step"] / 1000)
        graph = rows[model, "cuda_graph"]
        assert graph["status"] == "skipped" and "CUDA" in graph["reason"]

    summary = saved["summary"]
    for variant in ("eager_fp32", "eager_bf16"):
        total = summary["per_variant"][variant]
        assert total["complete"]
        assert total["projected_s"] == pytest.approx(rows["time_ddpm", variant]["projected_s"]
                                                     + rows["denoiser", variant]["projected_s"])
    assert summary["per_variant"]["cuda_graph"] == {"projected_s": 0, "models": [], "complete": False}
    for model, best in summary["best_per_model"].items():
        assert best["projected_s"] == min(rows[model, v]["projected_s"] for v in ("eager_fp32", "eager_bf16"))
    assert summary["best_total_s"] == pytest.approx(sum(b["projected_s"] for b in summary["best_per_model"].values()))


def test_rows_past_the_time_limit_are_skipped_with_a_message():
    report = bench.main(["--device", "cpu", "--time-limit", "0", "--width", "4", "--models", "class_flow",
                         "--variants", "eager_fp32", "compile"])
    assert [(row["status"], row["reason"]) for row in report["rows"]] == [("skipped", "time limit reached")] * 2
    assert report["summary"]["best_total_s"] is None


def test_defaults_run_every_variant_on_cuda_and_skip_compiling_on_a_cpu():
    on_cuda, on_cpu = bench.parse_args(["--device", "cuda"]), bench.parse_args(["--device", "cpu"])
    assert on_cuda.variants == ["eager_fp32", "eager_bf16", "cuda_graph", "compile"]
    assert (on_cuda.steps, on_cuda.warmup, on_cuda.time_limit) == (200, 3, 90.0)
    assert on_cpu.variants == ["eager_fp32", "eager_bf16", "cuda_graph"]
    assert (on_cpu.steps, on_cpu.warmup) == (3, 1)
    assert on_cpu.models == list(bench.MODELS)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no step taken here
@pytest.mark.parametrize("profile, name", [("full", "class_ddpm"), ("quick", "time_flow")])
def test_the_recipes_schedules_reach_the_captured_learning_rate(profile, name):
    """The CUDA graph reads the learning rate from one tensor: the per-epoch decay (full) and the
    per-step one-cycle schedule (quick) must change that tensor, not replace it."""
    case = bench.recipe_cases(width=4, profile=profile)[name]
    step, per_epoch = bench.package_step(case, CPU, "fp32", capturable=True)
    scheduler = per_epoch or step.step_scheduler
    assert (per_epoch is None) == (profile == "quick")
    assert bench.schedule_reaches_lr_tensor(step.optimizer, scheduler)
    plain, per_epoch = bench.package_step(case, CPU, "fp32")  # a float rate: nothing a graph could read
    assert not bench.schedule_reaches_lr_tensor(plain.optimizer, per_epoch or plain.step_scheduler)
