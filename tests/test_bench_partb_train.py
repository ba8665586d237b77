"""benchmarks/bench_partb_train.py: the recipe's step counts, the CUDA-graph step's equivalence to
`fit`'s step (checked eagerly on the CPU), and a CPU smoke run of the script's main."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_partb_train.py"
_spec = importlib.util.spec_from_file_location("bench_partb_train", SCRIPT)
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # dataclasses look their module up there
_spec.loader.exec_module(bench)

CPU = torch.device("cpu")


def test_recipe_steps_are_epochs_times_batches_per_epoch():
    cases = bench.recipe_cases(CPU)
    # DDPMs: 20 x ceil(60000 / 128); flow matching: 10 x ceil(60000 / 64); denoiser: 5 x ceil(60000 / 256)
    assert {name: case.recipe_steps for name, case in cases.items()} == {
        "time_ddpm": 9380, "class_ddpm": 9380, "time_flow": 9380, "class_flow": 9380, "denoiser": 1175}
    assert {name: case.tail_size for name, case in cases.items()} == {
        "time_ddpm": 96, "class_ddpm": 96, "time_flow": 32, "class_flow": 32, "denoiser": 96}
    assert [case.recipe.num_hiddens for case in cases.values()] == [64, 64, 64, 64, 128]


@pytest.mark.parametrize("name", bench.MODELS)
def test_graph_step_is_fits_step(name):
    """The step the CUDA-graph variant captures (static buffers, device-side loss) draws the same
    numbers and computes the same loss and update as `fit`'s step with the package's loss."""
    case = bench.recipe_cases(CPU, width=4)[name]
    digits = bench.Digits.random(CPU, n=256)
    size = 64
    models = [bench.placed_model(case, CPU, "fp32") for _ in range(2)]
    optimizers = [torch.optim.Adam(model.parameters(), lr=case.recipe.learning_rate) for model in models]
    generators = [bench.noise_generator(case) for _ in range(2)]

    expected = bench.fit_step(models[0], optimizers[0], case.batch_loss, *digits.batch(size, 1), generators[0],
                              CPU, "fp32")
    static = bench.StaticStep(case, digits, models[1], optimizers[1], generators[1], CPU, "fp32", [size])
    static.load(size, 1)
    actual = static.run(size)

    torch.testing.assert_close(actual, expected)
    assert torch.equal(generators[0].get_state(), generators[1].get_state())  # as many draws, in order
    for got, want in zip(models[1].parameters(), models[0].parameters()):
        torch.testing.assert_close(got, want)
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
