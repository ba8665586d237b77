"""Algorithms B.2 and B.4: sampling Part B's DDPMs with Part A's loop, `sampling.sample`.

Part B's reverse step is the strided step of `schedule.step` on every one of the T timesteps
(stride 1) with diffusers' `fixed_large` variance sigma_t^2 = b_t, as the write-up's B2.3. Its
coefficients are float64 scalars, as Part B always had. Samples are drawn batch after batch
from one generator on the CPU, so they depend on (seed, batch size) only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from diffusion_lab import sampling
from diffusion_lab.backends.mnist import MnistBackend
from diffusion_lab.matched_start import MatchedStart
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.mnist.ddpm import DDPMSchedule
from diffusion_lab.mnist.precision import memory_format, resolve_precision
from diffusion_lab.mnist.unet import fold_batchnorm

# Part B's sampler as it always ran: float64 step coefficients.
PARTB_SCALAR_DTYPE = torch.float64


def inference_unet(unet: torch.nn.Module, device: torch.device | str = "cpu",
                   precision: str = "auto") -> tuple[torch.nn.Module, str]:
    """A copy of `unet` for sampling on `device`, BatchNorm folded into the convolutions (about 1.3x
    on the CPU) in the memory layout of the resolved precision (channels_last for bf16: 5x fp32 on
    this project's CPUs), and that precision; `unet` is not modified."""
    precision = resolve_precision(precision, torch.device(device))
    return fold_batchnorm(unet).to(device).to(memory_format=memory_format(precision)), precision


def partb_noise_model(unet: torch.nn.Module, schedule: DDPMSchedule, device: torch.device | str = "cpu",
                      precision: str = "auto", num_steps: int | None = None) -> MnistBackend:
    """The write-up's B.2 / B.4 sampler as a noise model: every one of the T steps, fixed_large
    variance, BatchNorm folded into the convolutions (about 1.3x on the CPU; `unet` is not modified).

    num_steps: run Part A's strided loop instead, with the fixed posterior variance, on every s-th
    timestep for s = ceil(T / num_steps), the smallest stride whose loop takes at most num_steps
    steps: exactly num_steps whenever it divides T, and fewer where no stride gives that many
    (T = 300: none gives 151..299); `strided_timesteps()` lists the steps taken."""
    folded, precision = inference_unet(unet, device, precision)
    if num_steps is None:
        return MnistBackend(folded, schedule.zero_based_alphas_cumprod, device, name="mnist-partb",
                            stride=1, precision=precision, variance_type="fixed_large")
    if not 1 <= num_steps <= schedule.num_timesteps:
        raise ValueError(f"num_steps must lie in 1..{schedule.num_timesteps} (T), got {num_steps}")
    stride = -(-schedule.num_timesteps // num_steps)
    return MnistBackend(folded, schedule.zero_based_alphas_cumprod, device, name="mnist-partb-strided",
                        stride=stride, precision=precision, variance_type="fixed_small")


def images_per_batch(network_batch: int, guided: bool) -> int:
    """How many images to draw at a time so that the network sees `network_batch` per call: half
    as many when guided (each image is evaluated with and without its class). On the CPU oneDNN is
    about 1.5x faster per image at 500 per call than at 1,000."""
    return max(1, network_batch // 2) if guided else network_batch


@dataclass
class SampleResult:
    """samples: (N, 1, 28, 28) float32 on the CPU, not clipped.
    frames: (F, N, 1, 28, 28) snapshots of x_t (first = pure noise, last = the samples) when asked
    for, at the 1-based `frame_steps` (0 = the final samples); None otherwise."""

    samples: torch.Tensor
    frames: torch.Tensor | None
    frame_steps: list[int]
    labels: torch.Tensor | None
    guidance_scale: float | None
    wall_time_s: float
    images_per_s: float
    network_evaluations: int


@dataclass(frozen=True)
class ScoreSampler:
    """One way the scores draw samples: `partb_noise_model`'s num_steps (None = all T), a Langevin
    corrector or none, and the start: "noise" (x_T ~ N(0, I), the course's) or "matched"
    (`matched_start.MatchedStart` on the training digits' moments)."""

    steps: int | None
    corrector: sampling.LangevinCorrector | None = None
    start: str = "noise"


START_KINDS = ("noise", "matched")


def score_samplers(num_steps: int | None, corrector_snr: float | None, matched_start: bool,
                   num_timesteps: int) -> list[ScoreSampler]:
    """The samplers a profile's scores draw with: `num_steps` as given (None = all T); where
    `corrector_snr` is set, half as many steps with a Langevin step after each, which costs about as
    many network evaluations; where `matched_start` is set, `num_steps` from the matched start, the
    same number of evaluations. Each addition is a sampler of its own, so each shows its own effect."""
    samplers = [ScoreSampler(num_steps)]
    if corrector_snr is not None:
        samplers.append(ScoreSampler(-(-(num_steps or num_timesteps) // 2), sampling.LangevinCorrector(corrector_snr)))
    if matched_start:
        samplers.append(ScoreSampler(num_steps, start="matched"))
    return samplers


def sampling_start(kind: str) -> MatchedStart | None:
    """The `sampling.sample` start of a START_KINDS name: None for "noise", else the MatchedStart of
    all 60,000 MNIST training digits (the data the models learn; about 1 s to compute)."""
    if kind not in START_KINDS:
        raise ValueError(f"unknown start {kind!r}: choose one of {', '.join(START_KINDS)}")
    return None if kind == "noise" else MatchedStart(load_mnist().train_images)


def evaluations_per_sample(num_steps: int, corrector: sampling.LangevinCorrector | None) -> int:
    """Network evaluations per image (per pass) of a loop of `num_steps` reverse steps with `corrector`."""
    return num_steps + (corrector.evaluations(num_steps) if corrector is not None else 0)


def sample_digits(
    model: MnistBackend,
    generator: torch.Generator,
    *,
    labels: torch.Tensor | None = None,
    num_samples: int | None = None,
    guidance_scale: float | None = None,
    batch_size: int = 500,
    frame_every: int | None = None,
    corrector: sampling.LangevinCorrector | None = None,
    start: sampling.Start | None = None,
    scalar_dtype: torch.dtype = PARTB_SCALAR_DTYPE,
    progress: bool = False,
) -> SampleResult:
    """Samples of the digits `labels` (N,) (-1 = unconditional) with CFG at `guidance_scale`, or
    `num_samples` unconditional ones (a time-conditioned model takes no labels and no guidance).

    frame_every: also keep x_t before every this many steps of the loop, and the final samples.
    corrector: Langevin steps after every reverse step but the last (`sampling.LangevinCorrector`).
    start: maps each batch's first draw to x_T (`sampling.sample`; `sampling_start`); None: x_T = that draw.
    """
    if (labels is None) == (num_samples is None):
        raise ValueError("give either labels or num_samples")
    count = labels.shape[0] if labels is not None else num_samples
    digits = labels if labels is not None else torch.full((count,), -1, dtype=torch.long)
    guidance = guidance_scale if model.num_classes else None
    timesteps = model.strided_timesteps()
    uncond = model.encode("")
    samples, frames, frame_steps = [], [], []
    started = time.perf_counter()
    for begin in range(0, count, batch_size):
        batch = digits[begin : begin + batch_size]
        recorder = sampling.FrameRecorder() if frame_every else None
        x = sampling.sample(
            model, len(batch), model.encode_digits(batch.tolist()), generator, guidance=guidance,
            uncond=uncond if guidance is not None else None, callback=recorder, callback_every=frame_every or 1,
            corrector=corrector, start=start, scalar_dtype=scalar_dtype, progress=progress,
        ).float().cpu()
        samples.append(x)
        if recorder is not None:
            frames.append(torch.stack([frame.float() for _, _, frame in recorder.frames] + [x]))
            frame_steps = [t + 1 for t in recorder.timesteps] + [0]
    wall = time.perf_counter() - started
    passes = 2 if sampling.needs_unconditional(guidance) else 1
    return SampleResult(
        samples=torch.cat(samples),
        frames=torch.cat(frames, dim=1) if frames else None,
        frame_steps=frame_steps,
        labels=labels,
        guidance_scale=guidance,
        wall_time_s=wall,
        images_per_s=count / wall,
        network_evaluations=passes * evaluations_per_sample(len(timesteps), corrector) * count,
    )
