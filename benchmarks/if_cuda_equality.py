"""Does the project's DeepFloyd IF sampling loop equal diffusers' IFPipeline in float16 on CUDA?

    python benchmarks/if_cuda_equality.py [--device cuda] [--dtype float16] [--seeds 0 1 2] [--json out.json]

On the tiny random-weight IF-shaped pipeline the tests use (tests/test_deepfloyd.py: its prompts,
stage I at 16x16, seed 0), each seed runs the project's CFG loop (`sampling.sample`, g = 7,
uncond = encode(""), IF's thresholding of x0_hat) and IFPipeline with the same CPU generator seed,
and prints max and mean |ours - pipeline|. A difference means nothing without a scale, so each
seed also prints max |pipeline in float32 - pipeline in --dtype|, what running in that dtype
changes by itself, max |pipeline(seed + 1) - pipeline(seed)|, how far a sample from other noise
lies, and, as a second check, |ours - pipeline| with both in float32. Every float32
run uses IEEE float32 (no TF32 in cuDNN convolutions, which CUDA allows by default), so the
float32 pipeline is a reference, not another reduced-precision run. Seconds on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import torch

from diffusion_lab import sampling, schedule
from diffusion_lab.backends.deepfloyd import DeepFloydBackend, DeepFloydSettings
from diffusion_lab.backends.tiny_if import save_tiny_if_pipeline

# The tests' tiny pipeline (tests/test_deepfloyd.py), so these numbers are about the model they test.
PROMPTS = ("a rocket ship", "an oil painting of an old man", "a lithograph of a skull")
GUIDANCE = 7.0
SIZE = 16
DTYPES = {"float16": torch.float16, "float32": torch.float32}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="default: float16 on cuda, float32 elsewhere")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    args.device = torch.device(args.device)
    if args.dtype is None:
        args.dtype = "float16" if args.device.type == "cuda" else "float32"
    return args


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """float32 computed as float32 on CUDA: cuDNN convolutions may use TF32 by default (10 bits of
    mantissa, as few as float16), which would make the float32 reference as coarse as the run it judges."""
    conv, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, matmul


def precision(dtype: torch.dtype):
    return ieee_float32() if dtype == torch.float32 else contextlib.nullcontext()


def project_loop(backend: DeepFloydBackend, seed: int) -> torch.Tensor:
    """The project's CFG sample for PROMPTS[0], as test_cfg_sampling_equals_if_pipeline runs it.

    Returns (1, 3, SIZE, SIZE) in the backend's dtype and device, in [-1, 1] (the last step's
    thresholded x0_hat)."""
    x0_clip = schedule.X0Clip.from_scheduler_config(backend.scheduler_config)
    return sampling.sample(
        backend, 1, backend.encode(PROMPTS[0]), torch.Generator().manual_seed(seed),
        guidance=GUIDANCE, uncond=backend.encode(""), x0_clip=x0_clip,
    )


def pipeline_sample(backend: DeepFloydBackend, seed: int) -> torch.Tensor:
    """IFPipeline's sample for PROMPTS[0] on the same timesteps and a CPU generator of the same seed.

    Returns (1, 3, SIZE, SIZE) in the backend's dtype and device, in [-1, 1]."""
    return backend.pipeline(
        prompt_embeds=backend.encode(PROMPTS[0]),
        negative_prompt_embeds=backend.encode(""),
        timesteps=backend.strided_timesteps(),
        guidance_scale=GUIDANCE,
        generator=torch.Generator().manual_seed(seed),
        output_type="pt",
    ).images


def difference(a: torch.Tensor, b: torch.Tensor) -> dict[str, float | bool]:
    """max and mean |a - b| over two (1, 3, SIZE, SIZE) images, compared in float32 on the CPU."""
    diff = (a.detach().to("cpu", torch.float32) - b.detach().to("cpu", torch.float32)).abs()
    return {"max": diff.max().item(), "mean": diff.mean().item(), "bitwise_equal": torch.equal(a.cpu(), b.cpu())}


def both_samples(backend: DeepFloydBackend, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ours, pipeline), each (1, 3, SIZE, SIZE) in [-1, 1]."""
    with torch.no_grad(), precision(backend.dtype):
        return project_loop(backend, seed), pipeline_sample(backend, seed)


def compare_seed(backend: DeepFloydBackend, reference: DeepFloydBackend, seed: int) -> dict:
    """One seed's numbers; `reference` is the float32 backend (`backend` itself when it is float32)."""
    ours, pipeline = both_samples(backend, seed)
    ours32, pipeline32 = (ours, pipeline) if reference is backend else both_samples(reference, seed)
    with torch.no_grad(), precision(backend.dtype):
        other_noise = pipeline_sample(backend, seed + 1)
    result = {
        "seed": seed,
        "ours_vs_pipeline": difference(ours, pipeline),
        "pipeline_fp32_vs_pipeline": difference(pipeline32, pipeline),
        "ours_fp32_vs_pipeline_fp32": difference(ours32, pipeline32),
        "pipeline_other_seed_vs_pipeline": difference(other_noise, pipeline),
    }
    scale = result["pipeline_fp32_vs_pipeline"]["max"]
    result["ratio_to_dtype_effect"] = result["ours_vs_pipeline"]["max"] / scale if scale > 0 else None
    return result


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or device.type


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def seed_line(row: dict, dtype: str) -> str:
    ours, scale, fp32 = row["ours_vs_pipeline"], row["pipeline_fp32_vs_pipeline"], row["ours_fp32_vs_pipeline_fp32"]
    return (
        f"seed {row['seed']}: {dtype} |ours - pipeline| max {_f(ours['max'])} mean {_f(ours['mean'])}"
        f"{' (bitwise equal)' if ours['bitwise_equal'] else ''}"
        f" | scale |pipeline fp32 - pipeline {dtype}| max {_f(scale['max'])} mean {_f(scale['mean'])}"
        f" | ratio {_f(row['ratio_to_dtype_effect'])}"
        f" | other noise max {_f(row['pipeline_other_seed_vs_pipeline']['max'])}"
        f" | fp32 |ours - pipeline| max {_f(fp32['max'])} mean {_f(fp32['mean'])}"
        f"{' (bitwise equal)' if fp32['bitwise_equal'] else ''}"
    )


def summarize(rows: list[dict]) -> dict:
    worst = max(row["ours_vs_pipeline"]["max"] for row in rows)
    smallest_scale = min(row["pipeline_fp32_vs_pipeline"]["max"] for row in rows)
    ratios = [row["ratio_to_dtype_effect"] for row in rows if row["ratio_to_dtype_effect"] is not None]
    return {
        "max_ours_vs_pipeline": worst,
        "min_dtype_effect": smallest_scale,
        "max_ratio_to_dtype_effect": max(ratios) if ratios else None,
        "bitwise_equal_seeds": sum(row["ours_vs_pipeline"]["bitwise_equal"] for row in rows),
        "max_ours_vs_pipeline_fp32": max(row["ours_fp32_vs_pipeline_fp32"]["max"] for row in rows),
        "min_other_noise": min(row["pipeline_other_seed_vs_pipeline"]["max"] for row in rows),
    }


def summary_line(summary: dict, args: argparse.Namespace, name: str, seeds: int) -> str:
    return (
        f"SUMMARY {args.device.type} {args.dtype} ({name}): max |ours - pipeline| {_f(summary['max_ours_vs_pipeline'])}"
        f" ({summary['bitwise_equal_seeds']}/{seeds} seeds bitwise equal); smallest |pipeline fp32 - pipeline"
        f" {args.dtype}| {_f(summary['min_dtype_effect'])}; worst ratio {_f(summary['max_ratio_to_dtype_effect'])};"
        f" other noise at least {_f(summary['min_other_noise'])};"
        f" fp32 max |ours - pipeline| {_f(summary['max_ours_vs_pipeline_fp32'])}"
    )


def quiet_progress_bars() -> None:
    """No save / load progress bars: the output is the numbers."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def build_backends(settings: DeepFloydSettings, device: torch.device, dtype: torch.dtype):
    """(backend in `dtype`, float32 backend), the same object when `dtype` is float32."""
    backend = DeepFloydBackend(settings, device=device, dtype=dtype)
    reference = backend if dtype == torch.float32 else DeepFloydBackend(settings, device=device, dtype=torch.float32)
    return backend, reference


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    quiet_progress_bars()
    if args.device.type == "cpu":
        torch.set_num_threads(1)  # a UNet this small is all thread start-up cost (as in the tests)
    with tempfile.TemporaryDirectory(prefix="tiny_if_") as folder:
        settings = save_tiny_if_pipeline(folder, seed=0, prompts=PROMPTS, stage1_size=SIZE, stage2_size=2 * SIZE)
        backend, reference = build_backends(settings, args.device, DTYPES[args.dtype])
        rows = []
        for seed in args.seeds:
            rows.append(compare_seed(backend, reference, seed))
            print(seed_line(rows[-1], args.dtype), flush=True)
    import diffusers

    name = device_name(args.device)
    summary = summarize(rows)
    print(summary_line(summary, args, name, len(rows)))
    report = {
        "device": str(args.device), "device_name": name, "dtype": args.dtype,
        "torch": torch.__version__, "diffusers": diffusers.__version__, "python": sys.version.split()[0],
        "guidance": GUIDANCE, "size": SIZE, "prompt": PROMPTS[0], "seeds": rows, "summary": summary,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
