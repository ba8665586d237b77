"""The Try-it page: its JavaScript loop (docs/try-it/diffusion_loop.mjs, run by onnxruntime-web)
equals the Python loop, and the built page works in headless Chromium.

Equality: Python exports the tiny class-conditioned DDPM (`parta_onnx.onnx_export`), runs each mode
with the package's own functions (`sampling.sample` with CFG, `editing.sdedit`, `editing.inpaint`,
`illusions.visual_anagram`) from a seeded generator, and replays that generator's draws, in order,
to the JavaScript loop (tests/browser/try_it.mjs), which must use every draw and return the same
image within 1e-4. A draw taken out of order, a wrong coefficient or a wrong view moves the output
far beyond that. The page check draws with the mouse, runs each mode and tries each bad input.
Both skip, saying why, where Chromium, Node.js or node_modules is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import onnx
import pytest
import torch
from sitebuild import SITE_PATH

from diffusion_lab import editing, illusions, sampling
from diffusion_lab.backends.mnist import MnistBackend
from diffusion_lab.experiments import partb_models
from diffusion_lab.experiments.parta_backend import MnistPartA
from diffusion_lab.experiments.parta_onnx import MODEL_FILE, SETTINGS_FILE, onnx_export, pinned_npm_version
from diffusion_lab.experiments.partb_sampling import inference_unet
from diffusion_lab.report.try_it import RUNTIME_FILES, Runtime, find_runtime
from diffusion_lab.runcache.context import BuildContext

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "tests/browser/try_it.mjs"
TOLERANCE = 1e-4
MAX_DRAWS = 500


def _missing(engine: str) -> str | None:
    """Why `engine` cannot run the JavaScript here, with how to make it run; None when it can."""
    if engine == "chromium" and shutil.which("chromium") is None:
        return "Chromium is not installed (as root: apt-get install chromium)"
    if shutil.which("node") is None:
        return "Node.js is not installed (as root: apt-get install nodejs npm; then npm ci)"
    for package in ("onnxruntime-web", "playwright-core"):
        if not (REPO / f"node_modules/{package}/package.json").is_file():
            return f"{package} is not installed: run `npm ci` in the repository root"
    return None


def _require(engine: str) -> None:
    missing = _missing(engine)
    if missing:
        pytest.skip(f"Try-it check skipped: {missing}")


def _run_js(*args: str) -> dict:
    done = subprocess.run(["node", str(RUNNER), *args], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"the Try-it runner failed:\n{done.stderr[-5000:]}"
    return json.loads(done.stdout)


# --- the export ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """(ctx, the export run, its try-it.json) on the tiny profile, in a fresh cache."""
    ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0,
                       cache_dir=tmp_path_factory.mktemp("try-it") / "cache", force=False)
    run = onnx_export(ctx)
    return ctx, run, json.loads(run.path(SETTINGS_FILE).read_text())


def test_the_export_records_its_model_and_matches_part_as_loop(export):
    ctx, run, settings = export
    handle = MnistPartA(ctx)
    assert run.params["training"] == handle.training.key
    assert run.params["onnxruntime_web"] == pinned_npm_version() is not None
    assert run.params["opset"] >= 13 and run.params["onnx"]
    assert settings["timesteps"] == handle.timesteps
    assert settings["alphas_cumprod"] == [float(a) for a in handle.alphas_cumprod]
    graph = onnx.load(str(run.path(MODEL_FILE)))
    assert [o.version for o in graph.opset_import if o.domain == ""] == [run.params["opset"]]
    assert [i.name for i in graph.graph.input] == ["x", "t", "c"] and graph.graph.output[0].name == "eps"
    assert not any(node.op_type == "BatchNormalization" for node in graph.graph.node), "BatchNorm not folded"
    kinds = {picture["kind"] for picture in settings["inputs"]}
    assert kinds == {"image", "mask"}
    for picture in settings["inputs"]:
        assert len(picture["pixels"]) == 28 * 28 and 0 <= min(picture["pixels"]) <= max(picture["pixels"]) <= 1
        if picture["kind"] == "mask":
            assert set(picture["pixels"]) == {0.0, 1.0}


def test_package_json_and_the_lock_pin_one_runtime_version():
    declared = json.loads((REPO / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    assert declared == pinned_npm_version(), "package.json and package-lock.json disagree: run npm install"


def test_a_missing_or_stale_runtime_is_named(tmp_path):
    folder = tmp_path / "dist"
    assert "not installed" in Runtime("1.30.0", None, folder).problem
    assert "pins 1.30.0" in Runtime("1.30.0", "1.29.0", folder).problem
    folder.mkdir()
    assert RUNTIME_FILES[0] in Runtime("1.30.0", "1.30.0", folder).problem
    for name in RUNTIME_FILES:
        (folder / name).write_bytes(b"x")
    assert Runtime("1.30.0", "1.30.0", folder).problem is None
    assert find_runtime(tmp_path).problem is not None  # no lock, no node_modules here


# --- the JavaScript loop equals the Python loop -------------------------------------------------


def _python_model(ctx: BuildContext) -> MnistBackend:
    """Part A's MNIST noise model as MnistPartA builds it, in float32 on the CPU (the browser's)."""
    handle = MnistPartA(ctx)
    unet, precision = inference_unet(partb_models.load_ddpm(ctx, handle.training), "cpu", "fp32")
    return MnistBackend(unet, handle.alphas_cumprod, "cpu", precision=precision)


def _draws_of(seed: int, used_state: torch.Tensor) -> list[list[float]]:
    """The draws a loop took from a generator seeded `seed`: replayed from a fresh one until it
    reaches the state the loop left its own in (every draw of these loops is one 1x1x28x28 image)."""
    fresh = torch.Generator().manual_seed(seed)
    draws = []
    while not torch.equal(fresh.get_state(), used_state):
        assert len(draws) < MAX_DRAWS, "the loop's draws are not a sequence of 1x1x28x28 images"
        draws.append(torch.randn((1, 1, 28, 28), generator=fresh).flatten().tolist())
    return draws


def _picture(settings: dict, picture_id: str) -> torch.Tensor:
    pixels = next(p["pixels"] for p in settings["inputs"] if p["id"] == picture_id)
    return torch.tensor(pixels, dtype=torch.float32).reshape(1, 1, 28, 28)


def equality_cases(ctx: BuildContext, settings: dict) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Each mode as the page runs it, computed by the package: (cases for the JS, outputs by name)."""
    model = _python_model(ctx)
    steps = settings["timesteps"]
    image, mask = _picture(settings, "hand-drawn-3"), _picture(settings, "mask-center-square")
    i_start = settings["i_start"]
    one_hot = lambda digit: model.encode_digits([digit])  # noqa: E731
    calls = {
        "sample": (dict(mode="sample", digit=3, guidance=5.0),
                   lambda g: sampling.sample(model, 1, one_hot(3), g, timesteps=steps, guidance=5.0)),
        "sdedit": (dict(mode="sdedit", digit=8, guidance=5.0, i_start=i_start, image=image),
                   lambda g: editing.sdedit(model, image, i_start, one_hot(8), g, timesteps=steps, guidance=5.0)),
        "sdedit-unconditional": (dict(mode="sdedit", digit=-1, guidance=5.0, i_start=1, image=image),
                                 lambda g: editing.sdedit(model, image, 1, one_hot(-1), g, timesteps=steps,
                                                          guidance=5.0)),
        "inpaint": (dict(mode="inpaint", digit=5, guidance=3.0, image=image, mask=mask),
                    lambda g: editing.inpaint(model, image, mask, one_hot(5), g, timesteps=steps, guidance=3.0)),
        "anagram": (dict(mode="anagram", digits=[6, 9], view="rot180", guidance=5.0),
                    lambda g: illusions.visual_anagram(model, 1, one_hot(6), one_hot(9), g,
                                                       view=illusions.ROT180, guidance=5.0, timesteps=steps)),
    }
    cases, outputs = [], {}
    for seed, (name, (options, compute)) in enumerate(calls.items(), start=100):
        generator = torch.Generator().manual_seed(seed)
        outputs[name] = compute(generator).flatten()
        case = {key: (value.flatten().tolist() if isinstance(value, torch.Tensor) else value)
                for key, value in options.items()}
        cases.append({"name": name, **case, "draws": _draws_of(seed, generator.get_state())})
    return cases, outputs


@pytest.mark.parametrize("engine", ["chromium", "node"])
def test_the_javascript_loop_equals_the_python_loop_in_every_mode(export, engine, tmp_path):
    _require(engine)
    ctx, run, settings = export
    cases, expected = equality_cases(ctx, settings)
    shutil.copy(run.path(MODEL_FILE), tmp_path / "model.onnx")
    loop_settings = {key: settings[key] for key in
                     ("alphas_cumprod", "timesteps", "num_timesteps", "num_classes", "input_names", "output_name")}
    (tmp_path / "cases.json").write_text(json.dumps({"settings": loop_settings, "cases": cases}))

    report = _run_js("equality", "--work", str(tmp_path), "--engine", engine,
                     "--chromium", shutil.which("chromium") or "chromium")
    assert not report.get("console_errors"), report.get("console_errors")
    differences = {}
    for name, output in expected.items():
        result = report["results"][name]
        assert result["used"] == result["drawn"] > 0, f"{name}: the JS loop used {result['used']} of {result['drawn']} draws"
        differences[name] = (torch.tensor(result["output"]) - output).abs().max().item()
    assert max(differences.values()) <= TOLERANCE, f"max |JS - Python| per mode: {differences}"
    # the modes differ from one another: the comparison is not of one image five times
    assert min((expected["sample"] - out).abs().max().item() for name, out in expected.items() if name != "sample") > 0.01


# --- the built page -----------------------------------------------------------------------------


def test_the_built_page_runs_every_mode_and_refuses_bad_input(builds):
    _require("chromium")
    cold, _ = builds
    assert (cold / "try-it/ort" / RUNTIME_FILES[-1]).is_file(), "the tiny build copied no runtime into the site"
    settings = json.loads((cold / "try-it" / SETTINGS_FILE).read_text())
    report = _run_js("page", "--site", str(cold), "--base-path", SITE_PATH, "--chromium", shutil.which("chromium"))
    assert report["state"] == "ready", report["message"]
    assert not report["console_errors"] and not report["outside_requests"], report

    bad = report["bad_input"]
    assert "canvas is empty" in bad["empty_canvas_sdedit"]["refused"]
    assert "canvas is empty" in bad["empty_canvas_inpaint"]["refused"]
    assert "mask is empty" in bad["empty_mask"]["refused"]
    for case in ("guidance_too_large", "guidance_not_a_number"):
        assert "Guidance must be a number from 0 to 10" in bad[case]["refused"], bad[case]
    assert report["drawing"]["levels"] > 1, "the mouse stroke drew nothing"

    steps = len(settings["timesteps"])
    expected_steps = {"sample": steps, "sdedit": steps - settings["i_start"], "inpaint": steps, "anagram": steps}
    for mode, count in expected_steps.items():
        result = report["runs"][mode]
        assert "ms" in result, f"{mode}: {result}"
        assert result["steps"] == count and result["frames"] == count, (mode, result)
        assert result["calls"] == (2 if mode == "anagram" else 1) * count, (mode, result)
        assert result["result"]["levels"] > 1, f"{mode} showed a blank image"
    assert report["anagram_view"]["levels"] > 1
