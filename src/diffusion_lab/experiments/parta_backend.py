"""Which model draws Part A: `backend_for(ctx)` gives a handle around the build's NoiseModel.

A handle knows what can be known without loading (or training) the model, so the CLI can refuse
bad input before any work: the image size, the strided timesteps, whether a prompt is understood.
It also says what stands for the write-up's stock pipeline (section 0) and whether a stage II
upsampler is there to show figures at 256x256.
Its `identity` goes into every run's parameters (for MNIST, the key of the Part B training run,
so retraining invalidates Part A), and `runs` into every figure's provenance.

The MNIST model comes from Part B's cache (trained there on a miss); DeepFloyd IF is built from
the DIFFUSION_LAB_IF_* settings (see backends/deepfloyd.py) and loads its weights on first use.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import torch

from diffusion_lab.backends.base import NoiseModel
from diffusion_lab.backends.mnist import MnistBackend, loop_timesteps, parse_prompt
from diffusion_lab.experiments import partb_models, partb_training
from diffusion_lab.experiments.partb_sampling import inference_unet
from diffusion_lab.mnist.training import schedule_for
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord
from diffusion_lab.stock_sampling import sample_with_scheduler


class PartABackend(Protocol):
    name: str
    label: str  # for Page(backend_label=...): says which model drew a figure, and which not
    sample_shape: tuple[int, int, int]
    data_range: tuple[float, float]
    timesteps: list[int]  # the strided list the loops run on
    alphas_cumprod: torch.Tensor  # the training schedule, without loading weights
    schedule_identity: dict  # what the forward process alone depends on
    identity: dict  # what the model's outputs depend on
    runs: list[RunRecord]  # the runs the model comes from
    model: NoiseModel
    stock_label: str  # what draws section 0: a stock pipeline, or diffusers' stock scheduler
    has_stage2: bool  # a 64 -> 256 upsampler is configured (known without loading it)
    stage2_label: str | None  # what that upsampler is; None where there is none
    upsample_figures: bool  # show every Part A figure upsampled by stage II too

    def stock_samples(
        self, prompts: list[str], num_inference_steps: int, guidance: float, generator: torch.Generator
    ) -> torch.Tensor:
        """One image per prompt from the stock sampler at `num_inference_steps`, in the data range."""

    def upsample(self, images: torch.Tensor, prompts: list[str], generator: torch.Generator) -> torch.Tensor:
        """Stage II of each image, conditioned on its prompt (only where stage2_label is set)."""

    def check_prompt(self, prompt: str) -> None:
        """Raise UnknownPrompt (one line, listing what is understood) for a prompt the model lacks."""

    def prompt_class(self, prompt: str) -> int | None:
        """The MNIST class a prompt names, for the judge; None where there is no judge."""


class MnistPartA:
    """The class-conditioned DDPM of Part B (B2.4) as Part A's noise model."""

    name = "mnist"
    sample_shape = MnistBackend.sample_shape
    data_range = MnistBackend.data_range
    stock_label = (
        "diffusers' stock DDPMScheduler (its own timestep spacing, update and noise draws) driving the "
        "Part B class-conditioned DDPM: there is no stock MNIST pipeline"
    )
    has_stage2 = False
    stage2_label = None
    upsample_figures = False

    def __init__(self, ctx: BuildContext):
        self.ctx = ctx
        self.label = (
            f"MNIST class-conditioned DDPM trained in Part B (`{ctx.profile}` profile), not DeepFloyd IF"
        )

    @cached_property
    def _schedule(self):
        # From the profile's recipe, not the training run: known before anything is trained.
        return schedule_for(self.ctx.recipes.partb.class_ddpm)

    @cached_property
    def alphas_cumprod(self) -> torch.Tensor:
        # MnistBackend's 0-based timesteps: entry k is Part B's t = k + 1 (see backends/mnist.py).
        return self._schedule.alphas_cumprod[1:]

    @cached_property
    def timesteps(self) -> list[int]:
        """MnistBackend's default list, known without building it: ~34 steps over T."""
        return loop_timesteps(self._schedule.num_timesteps)

    @property
    def schedule_identity(self) -> dict:
        s = self._schedule
        return {"backend": self.name, "num_timesteps": s.num_timesteps, "beta1": s.beta1, "beta2": s.beta2}

    @cached_property
    def training(self) -> RunRecord:
        return partb_training.ddpm_training(self.ctx, conditional=True)

    @cached_property
    def identity(self) -> dict:
        return {"backend": self.name, "training": self.training.key, "timesteps": self.timesteps}

    @property
    def runs(self) -> list[RunRecord]:
        return [self.training]

    @cached_property
    def model(self) -> MnistBackend:
        unet, precision = inference_unet(partb_models.load_ddpm(self.ctx, self.training), self.ctx.device)
        return MnistBackend(unet, self.alphas_cumprod, self.ctx.device, name="mnist", precision=precision)

    def check_prompt(self, prompt: str) -> None:
        parse_prompt(prompt)

    def prompt_class(self, prompt: str) -> int | None:
        digit = parse_prompt(prompt)
        return None if digit < 0 else digit

    def stock_samples(self, prompts, num_inference_steps, guidance, generator) -> torch.Tensor:
        model = self.model
        condition = torch.cat([model.encode(prompt) for prompt in prompts])
        return sample_with_scheduler(model, len(prompts), condition, generator,
                                     num_inference_steps=num_inference_steps, guidance=guidance)

    def upsample(self, images, prompts, generator) -> torch.Tensor:
        raise RuntimeError("the MNIST backend has no stage II upsampler")


class DeepFloydPartA:
    """DeepFloyd IF stage I through diffusers, configured by the DIFFUSION_LAB_IF_* settings."""

    name = "deepfloyd"
    data_range = (-1.0, 1.0)
    stock_label = "diffusers' stock IFPipeline (stage I)"

    def __init__(self, ctx: BuildContext):
        from diffusion_lab.backends.deepfloyd import DeepFloydSettings

        self.ctx = ctx
        self.settings = DeepFloydSettings.from_env()
        self.has_stage2 = bool(self.settings.stage2)
        self.upsample_figures = self.settings.upsample_figures and self.has_stage2

    @cached_property
    def label(self) -> str:
        """The loaded model's own description: a stand-in (e.g. the tiny random test model) says so."""
        return self.model.description

    @cached_property
    def model(self):
        from diffusion_lab.backends.deepfloyd import DeepFloydBackend

        return DeepFloydBackend(self.settings, device=self.ctx.device)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return tuple(self.model.sample_shape)

    @property
    def timesteps(self) -> list[int]:
        return self.model.strided_timesteps()

    @cached_property
    def alphas_cumprod(self) -> torch.Tensor:
        from diffusion_lab.backends.if_schedule import if_alphas_cumprod

        return if_alphas_cumprod()

    @property
    def schedule_identity(self) -> dict:
        from diffusion_lab.backends.if_schedule import IF_STAGE1_SCHEDULER_CONFIG

        return {"backend": self.name, "scheduler_config": IF_STAGE1_SCHEDULER_CONFIG}

    @property
    def stage2_label(self) -> str | None:
        return self.model.stage2_description

    @cached_property
    def identity(self) -> dict:
        # Where the hub cache is and which figures are upsampled change no result.
        unrelated = {"hf_cache_dir", "upsample_figures"}
        settings: dict[str, Any] = {k: v for k, v in asdict(self.settings).items() if k not in unrelated}
        embeds = self.settings.prompt_embeds_file
        if embeds and Path(embeds).is_file():
            from diffusion_lab.hashing import file_sha256

            settings["prompt_embeds_sha256"] = file_sha256(Path(embeds))
        return {"backend": self.name, "settings": settings}

    @property
    def runs(self) -> list[RunRecord]:
        return []

    def check_prompt(self, prompt: str) -> None:
        self.model.encode(prompt)

    def prompt_class(self, prompt: str) -> int | None:
        return None

    def _conditions(self, prompts: list[str]) -> torch.Tensor:
        return torch.cat([self.model.encode(prompt) for prompt in prompts])

    def stock_samples(self, prompts, num_inference_steps, guidance, generator) -> torch.Tensor:
        return self.model.sample_with_pipeline(
            self._conditions(prompts), generator=generator, num_images=len(prompts),
            num_inference_steps=num_inference_steps, guidance_scale=guidance,
        )

    def upsample(self, images, prompts, generator) -> torch.Tensor:
        return self.model.upsample(images, self._conditions(prompts), generator,
                                   num_inference_steps=self.settings.stage2_steps)


def backend_for(ctx: BuildContext) -> PartABackend:
    """The handle for ctx.backend: "mnist" (the embedded default) or "deepfloyd"."""
    if ctx.backend == "deepfloyd":
        return DeepFloydPartA(ctx)
    if ctx.backend == "mnist":
        return MnistPartA(ctx)
    raise ValueError(f"unknown backend {ctx.backend!r}: choose mnist or deepfloyd")
