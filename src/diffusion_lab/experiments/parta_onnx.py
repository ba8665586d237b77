"""The Try-it page's model: Part A's class-conditioned MNIST DDPM exported to ONNX for the browser.

One cached run writes `model.onnx` (the UNet of the build's profile, BatchNorm folded, float32,
any batch size) and `try-it.json` (everything the browser loop needs besides the network: the
schedule, the strided timesteps, the default guidance and i_start, and the site's input pictures
and masks in the model's data space). The page runs this model with onnxruntime-web (pinned in
package-lock.json) and `docs/try-it/diffusion_loop.mjs`, the JavaScript twin of the loops in
`sampling`, `editing` and `illusions`.

The model is always the MNIST DDPM, whatever backend drew Part A: it is the one small enough to
run in a reader's browser, and Part B trains it in every build.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import torch

from diffusion_lab.experiments import partb_models
from diffusion_lab.experiments.parta_backend import MnistPartA
from diffusion_lab.experiments.parta_inputs import (
    REPO_ROOT,
    input_identity,
    load_input,
    mask_to_model_space,
    to_model_space,
)
from diffusion_lab.experiments.parta_plan import InputImage, plan_for
from diffusion_lab.mnist.unet import fold_batchnorm
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run

# ai.onnx opset 17: what every onnxruntime-web since 1.14 runs on its WASM backend.
OPSET = 17
INPUT_NAMES = ("x", "t", "c")  # (N, 1, 28, 28) float32, (N,) float32 = (k + 1) / T, (N, 10) one-hot
OUTPUT_NAME = "eps"  # (N, 1, 28, 28) float32
MODEL_FILE = "model.onnx"
SETTINGS_FILE = "try-it.json"
PACKAGE_LOCK = REPO_ROOT / "package-lock.json"
RUNTIME_PACKAGE = "onnxruntime-web"
# The guidance the page accepts: the range Part B's guidance sweep studies, 0 (unconditional) to 10.
GUIDANCE_RANGE = (0.0, 10.0)


def pinned_npm_version(package: str = RUNTIME_PACKAGE, lock: Path = PACKAGE_LOCK) -> str | None:
    """The version package-lock.json pins for `package`, None where the lock or the package is missing."""
    try:
        packages = json.loads(lock.read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return None
    return packages.get(f"node_modules/{package}", {}).get("version")


def onnx_version() -> str:
    import onnx

    return onnx.__version__


def export_unet(unet: torch.nn.Module, path: Path, num_classes: int) -> None:
    """Write `unet` (eval mode, CPU, float32) to `path` as ONNX with a dynamic batch axis.

    torch's TorchScript-based exporter: of torch 2.14's two exporters it is the one that needs only
    the `onnx` package (the torch.export-based one adds onnxscript and onnx-ir) and it takes 0.2 s
    where the other takes 3 s on the quick UNet; torch marks it deprecated, hence the filter."""
    batch = 2
    example = (torch.zeros(batch, 1, 28, 28), torch.full((batch,), 0.5), torch.zeros(batch, num_classes))
    axes = {name: {0: "batch"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(unet, example, str(path), dynamo=False, opset_version=OPSET,
                          input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME], dynamic_axes=axes)


def _pictures(images: list[InputImage], masks: list[InputImage]) -> list[dict]:
    """The site's inputs as the page offers them: id, label, kind, 784 values in [0, 1] (masks: 0/1)."""
    shape = MnistPartA.sample_shape
    found = []
    for kind, group in (("image", images), ("mask", masks)):
        for image in group:
            picture, _ = load_input(image, shape[0])
            values = (mask_to_model_space(picture, shape) if kind == "mask"
                      else to_model_space(picture, shape, MnistPartA.data_range))
            found.append({"id": image.id, "label": image.label, "kind": kind,
                          "pixels": [round(float(v), 4) for v in values.flatten()]})
    return found


def try_it_inputs() -> tuple[list[InputImage], list[InputImage]]:
    """The pictures and masks the page offers: every MNIST input Part A edits, then its masks."""
    plan = plan_for("mnist")
    images = [*plan.sdedit_images, *plan.drawn_images, *(edit.image for edit in plan.text_edits)]
    unique = list({image.id: image for image in images}.values())
    masks = list({inpainting.mask.id: inpainting.mask for inpainting in plan.inpaintings}.values())
    return unique, masks


def onnx_export(ctx: BuildContext) -> RunRecord:
    """The class-conditioned DDPM of ctx's profile as `model.onnx`, with the loop's settings and the
    site's inputs in `try-it.json`; its parameters record the opset, the onnx package's version and
    the onnxruntime-web version package-lock.json pins (None where the lock lacks it)."""
    handle = MnistPartA(ctx)
    plan = plan_for("mnist")
    images, masks = try_it_inputs()
    timesteps = handle.timesteps
    params = {
        "training": handle.training.key, "opset": OPSET, "onnx": onnx_version(),
        "onnxruntime_web": pinned_npm_version(), "timesteps": timesteps, "guidance": plan.guidance,
        "guidance_range": list(GUIDANCE_RANGE), "i_start": min(plan.iterative_i_start, len(timesteps) - 1),
        "inputs": [input_identity(image) for image in images + masks],
    }

    def compute(scratch: Scratch):
        unet = fold_batchnorm(partb_models.load_ddpm(ctx, handle.training)).to("cpu", torch.float32).eval()
        started = time.perf_counter()
        export_unet(unet, scratch.dir / MODEL_FILE, unet.num_classes)
        export_s = time.perf_counter() - started
        import onnx

        onnx.checker.check_model(str(scratch.dir / MODEL_FILE))
        settings = {
            "profile": ctx.profile, "training_run": handle.training.key,
            "num_timesteps": len(handle.alphas_cumprod), "num_classes": unet.num_classes,
            "alphas_cumprod": [float(a) for a in handle.alphas_cumprod],
            "timesteps": timesteps, "variance_type": "fixed_small",
            "guidance": params["guidance"], "guidance_range": params["guidance_range"],
            "i_start": params["i_start"], "input_names": list(INPUT_NAMES), "output_name": OUTPUT_NAME,
            "inputs": _pictures(images, masks),
        }
        # Compact: the page fetches it (scratch.save would indent every one of its ~9,000 numbers).
        (scratch.dir / SETTINGS_FILE).write_text(json.dumps(settings, separators=(",", ":")))
        return {"model_bytes": (scratch.dir / MODEL_FILE).stat().st_size, "export_s": export_s,
                "num_timesteps": settings["num_timesteps"], "steps": len(timesteps)}

    return cached_run(ctx, "parta/onnx-export", params, compute, backend="mnist")
