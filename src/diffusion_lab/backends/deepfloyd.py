"""DeepFloyd IF through diffusers: stage I as a NoiseModel, stage II as the 64 -> 256 upsampler.

The algorithms drive stage I's UNet directly (`predict`); the stock pipelines are used only for
what the write-up shows as stock output (section 0) and for upsampling. Weights load with
`from_pretrained` from a hub id (hub cache, HF_HUB_OFFLINE respected) or a local folder; when
they cannot be loaded the constructor raises one `WeightsUnavailable` before any other work.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

import torch

from diffusion_lab.backends.base import ModelOutput
from diffusion_lab.backends.deepfloyd_prompts import (
    UNCONDITIONAL_PROMPT,
    PromptEmbeddings,
    load_prompt_embeddings_file,
)
from diffusion_lab.backends.deepfloyd_weights import (
    WeightsSource,
    WeightsUnavailable,
    check_text_encoder_available,
    check_weights_available,
    weights_errors_as_unavailable,
)
from diffusion_lab.forward_process import strided_timesteps

__all__ = ["DeepFloydBackend", "DeepFloydSettings", "WeightsUnavailable", "DEFAULT_STAGE1", "DEFAULT_STAGE2",
           "check_settings"]

DEFAULT_STAGE1 = "DeepFloyd/IF-I-XL-v1.0"
DEFAULT_STAGE2 = "DeepFloyd/IF-II-L-v1.0"
IF_STAGE1_SIZE = 64  # pixels: the published stage I's sample size, and stage II's input
IF_STAGE2_SIZE = 256
# "auto": diffusers' own default for IF, the T5 encoder saved with stage I's weights, unless a
# prompt-embeddings file is given, which then is the only source (T5-XXL is never loaded for it).
TEXT_ENCODER_MODES = ("auto", "none", "t5", "t5-8bit")
PROMPT_EMBEDS_HINT = (
    "Prompts are encoded by the T5 text encoder saved with stage I's weights (its text_encoder/ and"
    " tokenizer/ subfolders, as `IFPipeline.from_pretrained(...).save_pretrained(folder)` writes them),"
    " or read from a prompt-embeddings file: set DIFFUSION_LAB_IF_PROMPT_EMBEDS to a `torch.save`d dict"
    " prompt -> (1, 77, 4096) tensor, as the course shipped."
)
# Optional {"name": ..., "description": ...} beside model_index.json: how a folder that is not
# the real IF (e.g. the tiny random test model) says so on every page that uses it.
MODEL_CARD_FILE = "diffusion_lab.json"
STRIDE = 30


@dataclass(frozen=True)
class DeepFloydSettings:
    """What to load. Each field has an environment variable (see ENV) so `make site` can set it.

    stage1 / stage2: hub id or local folder; stage2 None (env "none") disables upsampling.
    prompt_embeds_file: the course-style dict prompt -> (1, 77, 4096) tensor.
    text_encoder: "auto" (the default: T5 from stage I's weights when no prompt_embeds_file is
        given, else the file alone), "none" (prompts only from the file), "t5" (the file first,
        then T5 for any other prompt) or "t5-8bit" (the same, T5 in 8 bits: bitsandbytes, CUDA).
    cpu_offload: diffusers' model CPU offload, for GPUs that cannot hold the models at once.
    embeddings_cache_dir: where embeddings computed by T5 are kept between builds.
    hf_cache_dir: the Hugging Face hub cache to read (default: the HF_HOME / HF_HUB_CACHE one).
    variant: "auto" (fp16 files from the hub, fp16 files in a folder when it has them), or a
        diffusers variant name, or None for the full-precision files.
    upsample_figures: every Part A figure also shown upsampled by stage II to 256x256 (section 0
        always shows stage II when there is one). How results look, not what stage I computes.
    stage2_steps: stage II's denoising steps (IFSuperResolutionPipeline's default 50, as the course).
    """

    stage1: str = DEFAULT_STAGE1
    stage2: str | None = DEFAULT_STAGE2
    prompt_embeds_file: str | None = None
    text_encoder: str = "auto"
    cpu_offload: bool = False
    embeddings_cache_dir: str | None = None
    hf_cache_dir: str | None = None
    variant: str | None = "auto"
    upsample_figures: bool = False
    stage2_steps: int = 50

    ENV = {
        "stage1": "DIFFUSION_LAB_IF_STAGE1",
        "stage2": "DIFFUSION_LAB_IF_STAGE2",
        "prompt_embeds_file": "DIFFUSION_LAB_IF_PROMPT_EMBEDS",
        "text_encoder": "DIFFUSION_LAB_IF_TEXT_ENCODER",
        "cpu_offload": "DIFFUSION_LAB_IF_CPU_OFFLOAD",
        "embeddings_cache_dir": "DIFFUSION_LAB_IF_EMBEDDINGS_CACHE",
        "hf_cache_dir": "DIFFUSION_LAB_IF_HF_CACHE",
        "variant": "DIFFUSION_LAB_IF_VARIANT",
        "upsample_figures": "DIFFUSION_LAB_IF_UPSAMPLE",
        "stage2_steps": "DIFFUSION_LAB_IF_STAGE2_STEPS",
    }
    FLAGS = ("cpu_offload", "upsample_figures")
    COUNTS = ("stage2_steps",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "DeepFloydSettings":
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(cls.ENV[field.name], "")
            if raw == "":
                continue
            if field.name in cls.FLAGS:
                values[field.name] = raw.strip().lower() in {"1", "true", "yes", "on"}
            elif field.name in cls.COUNTS:
                values[field.name] = _positive_int(raw, cls.ENV[field.name])
            elif field.name in ("stage2", "variant") and raw.strip().lower() == "none":
                values[field.name] = None
            else:
                values[field.name] = raw
        values.update(overrides)
        return cls(**values)

    @property
    def prompt_encoder(self) -> str:
        """The text encoder this build loads: "none", "t5" or "t5-8bit" ("auto" resolved)."""
        if self.text_encoder == "auto":
            return "none" if self.prompt_embeds_file else "t5"
        return self.text_encoder

    def to_env(self) -> dict[str, str]:
        """The environment that makes `from_env` return these settings."""
        env = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                value = "none" if field.name in ("stage2", "variant") else ""
            env[self.ENV[field.name]] = str(int(value)) if isinstance(value, bool) else str(value)
        return env


def _positive_int(raw: str, variable: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{variable} must be a positive whole number, got {raw!r}")
    return value


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    # diffusers renamed torch_dtype to dtype (0.36+), and warns on the old name.
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def _resolve_variant(variant: str | None, source: WeightsSource, component: str = "unet") -> str | None:
    if variant != "auto":
        return variant
    if not source.is_folder:
        return "fp16"  # what IF's repos ship and what the course loaded; upcast on the CPU
    return "fp16" if any(source.path.glob(f"{component}/*.fp16.*")) else None


def _model_card(source: WeightsSource) -> dict[str, str]:
    card = source.path / MODEL_CARD_FILE if source.is_folder else None
    if card is None or not card.is_file():
        return {}
    return json.loads(card.read_text())


def _shown(source: WeightsSource) -> str:
    return f"folder {source.path.name}" if source.is_folder else source.source


def check_settings(settings: DeepFloydSettings) -> tuple[WeightsSource, WeightsSource | None]:
    """(stage I, stage II or None) sources, after every check that needs no weight read, in the
    order a person fixes them: the settings' values, stage I's weights, stage II's, then where
    prompts come from (T5 in stage I's weights, or a prompt-embeddings file).

    Raises WeightsUnavailable (missing weights or text encoder) or ValueError (a bad setting),
    each one message that says what to set. Cheap: nothing is loaded, the hub is at most asked."""
    s = settings
    env = DeepFloydSettings.ENV
    if s.text_encoder not in TEXT_ENCODER_MODES:
        raise ValueError(f"{env['text_encoder']} must be one of {', '.join(TEXT_ENCODER_MODES)},"
                         f" not {s.text_encoder!r}")
    stage1 = check_weights_available(s.stage1, role="DeepFloyd IF stage I", setting=env["stage1"],
                                     cache_dir=s.hf_cache_dir, hint=PROMPT_EMBEDS_HINT)
    stage2 = None
    if s.stage2:
        stage2 = check_weights_available(s.stage2, role="DeepFloyd IF stage II", setting=env["stage2"],
                                         cache_dir=s.hf_cache_dir)
    if s.prompt_encoder == "none" and not s.prompt_embeds_file:
        raise ValueError(
            f"DeepFloyd IF needs prompt embeddings, and {env['text_encoder']}=none loads no text encoder."
            f" Leave {env['text_encoder']} unset (or t5) to encode prompts with the T5 encoder of stage I's"
            f" weights, or set {env['prompt_embeds_file']} to a prompt-embeddings file (a dict prompt ->"
            " (1, 77, 4096) tensor)."
        )
    if s.prompt_embeds_file and not Path(s.prompt_embeds_file).expanduser().is_file():
        raise ValueError(f"{env['prompt_embeds_file']}: prompt-embeddings file {s.prompt_embeds_file} does not exist")
    if s.prompt_encoder != "none" and not s.prompt_embeds_file:
        # With a file, T5 is only asked for prompts the file lacks: its absence is not yet an error.
        check_text_encoder_available(stage1, setting=env["stage1"], cache_dir=s.hf_cache_dir,
                                     alternative=f"set {env['prompt_embeds_file']} to a prompt-embeddings"
                                                 " file (a dict prompt -> (1, 77, 4096) tensor)")
    if s.prompt_encoder == "t5-8bit" and importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(f"{env['text_encoder']}=t5-8bit needs the bitsandbytes package (and CUDA);"
                         " use t5 or install it")
    return stage1, stage2


class DeepFloydBackend:
    """DeepFloyd IF stage I as a NoiseModel (64x64 pixels in [-1, 1], T5 prompt embeddings)."""

    data_range = (-1.0, 1.0)

    def __init__(
        self,
        settings: DeepFloydSettings | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **setting_overrides,
    ):
        self.settings = replace(settings or DeepFloydSettings(), **setting_overrides)
        s = self.settings
        self.device = torch.device(device) if device is not None else _default_device()
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self._stage1_source, self._stage2_source = check_settings(s)
        table = load_prompt_embeddings_file(s.prompt_embeds_file) if s.prompt_embeds_file else {}

        self.pipeline = self._load(self._stage1_source, "IFPipeline", "DeepFloyd IF stage I", "stage1")
        self._stage2_pipeline = None
        self._encoder_pipeline = None
        self.prompts = PromptEmbeddings(
            model_key=s.stage1,
            table=table,
            encoder=None if s.prompt_encoder == "none" else self._encode_with_t5,
            disk_cache=s.embeddings_cache_dir,
            source=str(s.prompt_embeds_file or ""),
        )

        scheduler = self.pipeline.scheduler
        unet_config = self.pipeline.unet.config
        self.scheduler_config: dict[str, Any] = dict(scheduler.config)
        # The pipeline computes in float32: the same numbers, widened, keep the two in step.
        self.alphas_cumprod = scheduler.alphas_cumprod.detach().to("cpu", torch.float64)
        self.variance_type = self._variance_type(scheduler.config.variance_type, unet_config)
        size = unet_config.sample_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        self.sample_shape = (unet_config.in_channels, height, width)

        card = _model_card(self._stage1_source)
        self.name = card.get("name") or f"deepfloyd:{Path(s.stage1).name}"
        # Folders by their name only: the pages must not print paths of the builder's machine.
        self.description = card.get("description") or (
            f"DeepFloyd IF stage I {_shown(self._stage1_source)} (diffusers), {str(self.dtype).removeprefix('torch.')}"
            f" on {self.device.type}; prompts as T5 embeddings from"
            f" {'the T5 encoder' if s.prompt_encoder != 'none' else Path(s.prompt_embeds_file).name}"
        )
        self.stage2_description: str | None = None
        if self._stage2_source is not None:
            self.stage2_description = _model_card(self._stage2_source).get("description") or (
                f"DeepFloyd IF stage II {_shown(self._stage2_source)} (diffusers), 64 -> 256 pixels,"
                f" {str(self.dtype).removeprefix('torch.')} on {self.device.type}"
            )

    # -- loading -------------------------------------------------------------------------------

    def _load(self, source: WeightsSource, pipeline_class: str, role: str, setting: str):
        import diffusers

        cls = getattr(diffusers, pipeline_class)
        # Safety checker and watermarker act only on PIL output; everything here asks for tensors.
        kwargs = dict(
            text_encoder=None,
            tokenizer=None,
            safety_checker=None,
            feature_extractor=None,
            watermarker=None,
            requires_safety_checker=False,
            variant=_resolve_variant(self.settings.variant, source),
            cache_dir=self.settings.hf_cache_dir,
            local_files_only=source.local_files_only,
            **_dtype_kwarg(self.dtype),
        )
        with weights_errors_as_unavailable(source.source, role=role, setting=DeepFloydSettings.ENV[setting]):
            pipeline = cls.from_pretrained(source.source, **kwargs)
        pipeline.set_progress_bar_config(disable=True)
        if self.settings.cpu_offload and self.device.type != "cpu":
            pipeline.enable_model_cpu_offload(device=self.device)
        else:
            pipeline.to(self.device)
        return pipeline

    @property
    def stage2_pipeline(self):
        """IFSuperResolutionPipeline, loaded on first use (its availability was checked up front)."""
        if self._stage2_source is None:
            raise RuntimeError("no stage II configured: set stage2 (env DIFFUSION_LAB_IF_STAGE2) to upsample")
        if self._stage2_pipeline is None:
            self._stage2_pipeline = self._load(
                self._stage2_source, "IFSuperResolutionPipeline", "DeepFloyd IF stage II", "stage2"
            )
        return self._stage2_pipeline

    def _encode_with_t5(self, prompt: str) -> torch.Tensor:
        if self._encoder_pipeline is None:
            self._encoder_pipeline = self._load_encoder_pipeline()
        pipe = self._encoder_pipeline
        embeds, _ = pipe.encode_prompt(prompt, do_classifier_free_guidance=False, device=pipe._execution_device)
        return embeds

    def _load_encoder_pipeline(self):
        """A UNet-less IFPipeline around T5, kept apart so 8-bit T5 and the UNet place independently."""
        from transformers import T5EncoderModel

        source = self._stage1_source
        kwargs: dict[str, Any] = dict(
            subfolder="text_encoder",
            variant=_resolve_variant(self.settings.variant, source, "text_encoder"),
            cache_dir=self.settings.hf_cache_dir,
            local_files_only=source.local_files_only,
        )
        if self.settings.prompt_encoder == "t5-8bit":
            from transformers import BitsAndBytesConfig  # needs the bitsandbytes package and CUDA

            kwargs.update(quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="auto")
        else:
            kwargs.update(dtype=self.dtype)
        setting = DeepFloydSettings.ENV["stage1"]
        with weights_errors_as_unavailable(source.source, role="DeepFloyd IF T5 text encoder", setting=setting):
            text_encoder = T5EncoderModel.from_pretrained(source.source, **kwargs)
        import diffusers

        with weights_errors_as_unavailable(source.source, role="DeepFloyd IF tokenizer", setting=setting):
            pipe = diffusers.IFPipeline.from_pretrained(
                source.source,
                text_encoder=text_encoder,
                unet=None,
                safety_checker=None,
                feature_extractor=None,
                watermarker=None,
                requires_safety_checker=False,
                cache_dir=self.settings.hf_cache_dir,
                local_files_only=source.local_files_only,
            )
        if self.settings.prompt_encoder == "t5-8bit":
            pass  # placed by device_map when loaded
        elif self.settings.cpu_offload and self.device.type != "cpu":
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        return pipe

    @staticmethod
    def _variance_type(configured: str, unet_config) -> str:
        learns_variance = unet_config.out_channels == 2 * unet_config.in_channels
        if configured == "learned_range" and learns_variance:
            return "learned_range"
        if configured == "fixed_small" and not learns_variance:
            return "fixed_small"
        raise ValueError(
            f"unsupported IF configuration: scheduler variance_type {configured!r} with a UNet of"
            f" {unet_config.out_channels} output channels for {unet_config.in_channels} input channels"
        )

    # -- NoiseModel ----------------------------------------------------------------------------

    def strided_timesteps(self) -> list[int]:
        """990, 960, ..., 30, 0: the course's stride of 30 over IF's 1000 training steps."""
        num_timesteps = len(self.alphas_cumprod)
        return strided_timesteps((num_timesteps - 1) // STRIDE * STRIDE, STRIDE, num_timesteps)

    def encode(self, prompt: str) -> torch.Tensor:
        """The (1, tokens, dim) T5 embedding of `prompt` on this backend's device; "" is unconditional."""
        return self.prompts(prompt).to(self.device, self.dtype)

    @torch.no_grad()
    def predict(self, x_t: torch.Tensor, t: int, condition: torch.Tensor) -> ModelOutput:
        x = x_t.to(self.device, self.dtype)
        condition = condition.to(self.device, self.dtype)
        if condition.shape[0] == 1 and x.shape[0] > 1:
            condition = condition.expand(x.shape[0], -1, -1)
        output = self.pipeline.unet(x, int(t), encoder_hidden_states=condition, return_dict=False)[0]
        output = output.to(x_t.device, x_t.dtype)
        if self.variance_type == "fixed_small":
            return ModelOutput(eps=output)
        eps, variance = output.split(x.shape[1], dim=1)
        return ModelOutput(eps=eps, variance=variance)

    # -- the stock pipelines (section 0) -------------------------------------------------------

    def _condition(self, prompt_or_condition: str | torch.Tensor, batch: int) -> torch.Tensor:
        if isinstance(prompt_or_condition, str):
            prompt_or_condition = self.encode(prompt_or_condition)
        condition = prompt_or_condition.to(self.device, self.dtype)
        return condition.expand(batch, -1, -1) if condition.shape[0] == 1 else condition

    @torch.no_grad()
    def sample_with_pipeline(
        self,
        prompt: str | torch.Tensor,
        *,
        generator: torch.Generator,
        num_images: int = 1,
        num_inference_steps: int = 20,
        timesteps: list[int] | None = None,
        guidance_scale: float = 7.0,
    ) -> torch.Tensor:
        """Stock IFPipeline output for `prompt`, (num_images, 3, 64, 64), unclamped, in [-1, 1]-ish."""
        result = self.pipeline(
            prompt_embeds=self._condition(prompt, num_images),
            negative_prompt_embeds=self._condition(UNCONDITIONAL_PROMPT, num_images),
            num_inference_steps=None if timesteps else num_inference_steps,
            timesteps=timesteps,
            guidance_scale=guidance_scale,
            generator=generator,
            output_type="pt",
        )
        return result.images

    @torch.no_grad()
    def upsample(
        self,
        images: torch.Tensor,
        prompt_embeds: str | torch.Tensor,
        generator: torch.Generator,
        *,
        num_inference_steps: int = 50,
        guidance_scale: float = 4.0,
        noise_level: int = 250,
    ) -> torch.Tensor:
        """Stage II: (B, 3, 64, 64) in [-1, 1] -> (B, 3, 256, 256), conditioned on a prompt or its embedding.

        The defaults are IFSuperResolutionPipeline's, which the course used unchanged.
        """
        batch = images.shape[0]
        result = self.stage2_pipeline(
            image=images.to(self.device, self.dtype),
            prompt_embeds=self._condition(prompt_embeds, batch),
            negative_prompt_embeds=self._condition(UNCONDITIONAL_PROMPT, batch),
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            noise_level=noise_level,
            generator=generator,
            output_type="pt",
        )
        return result.images
