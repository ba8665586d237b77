"""Images per second of Part B training steps and DDPM sampling, fp32 vs bf16 + channels_last.

    python benchmarks/bench_partb.py [--device cpu|cuda] [--steps 10] [--widths 32 64 128]

Training rows time full optimizer steps (forward, backward, Adam) of the class-conditioned DDPM
loss (the denoiser's UNet is the same trunk, without the two FC branches). Sampling rows time
reverse steps with classifier-free guidance (two network evaluations per image per step) and
report images/s for a whole 300-step sample.
"""

from __future__ import annotations

import argparse
import time

import torch

from diffusion_lab import seeding
from diffusion_lab.experiments.partb_sampling import partb_noise_model, sample_digits
from diffusion_lab.mnist.ddpm import DDPMSchedule, class_conditioned_loss, class_labels
from diffusion_lab.mnist.precision import autocast, bf16_is_fast, memory_format
from diffusion_lab.mnist.unet import ClassConditionalUNet
from diffusion_lab.profiles import COURSE_GUIDANCE


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_images_per_s(width: int, precision: str, device: torch.device, batch_size: int, steps: int) -> float:
    model = ClassConditionalUNet(1, 10, width).to(device).to(memory_format=memory_format(precision)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = DDPMSchedule()
    generator = seeding.make_generator(0, "bench/train")
    x = torch.rand(batch_size, 1, 28, 28, generator=generator).to(device)
    y = torch.randint(0, 10, (batch_size,), generator=generator).to(device)

    def step():
        with autocast(device, precision):
            loss = class_conditioned_loss(model, schedule, x, y, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):  # warm-up: oneDNN / cuDNN pick their kernels here
        step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch_size / (time.perf_counter() - started)


def sample_images_per_s(width: int, precision: str, device: torch.device, num_samples: int, timesteps: int) -> float:
    """Whole-sample throughput, extrapolated from `timesteps` reverse steps to T = 300."""
    model = ClassConditionalUNet(1, 10, width).eval()
    schedule = DDPMSchedule(num_timesteps=timesteps)
    labels = class_labels(-(-num_samples // 10))[:num_samples]
    options = {"labels": labels, "guidance_scale": COURSE_GUIDANCE, "batch_size": num_samples}
    warm_up = partb_noise_model(model, DDPMSchedule(num_timesteps=2), device, precision)
    sample_digits(warm_up, seeding.make_generator(0, "bench/warm"), **options)
    _sync(device)
    timed = partb_noise_model(model, schedule, device, precision)
    result = sample_digits(timed, seeding.make_generator(0, "bench/sample"), **options)
    return result.images_per_s * timesteps / 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per row")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sample-batch", type=int, default=500)
    parser.add_argument("--sample-timesteps", type=int, default=20, help="reverse steps timed (of 300)")
    args = parser.parse_args()
    device = torch.device(args.device)
    precisions = ["fp32", "bf16"] if bf16_is_fast(device) else ["fp32"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    print(f"device: {name}   torch {torch.__version__}   batch {args.batch_size}")
    print(f"{'what':<34}{'D':>5}{'fp32 img/s':>12}{'bf16+CL img/s':>15}{'speed-up':>10}")
    rows = []
    for width in args.widths:
        rows.append(("train step (class DDPM loss)", width,
                     {p: train_images_per_s(width, p, device, args.batch_size, args.steps) for p in precisions}))
    for width in args.widths:
        rows.append((f"sample, 300 steps, CFG (batch {args.sample_batch})", width,
                     {p: sample_images_per_s(width, p, device, args.sample_batch, args.sample_timesteps)
                      for p in precisions}))
    for what, width, speeds in rows:
        bf16 = speeds.get("bf16")
        line = f"{what:<34}{width:>5}{speeds['fp32']:>12.1f}"
        line += f"{bf16:>15.1f}{bf16 / speeds['fp32']:>9.2f}x" if bf16 else f"{'-':>15}{'-':>10}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
