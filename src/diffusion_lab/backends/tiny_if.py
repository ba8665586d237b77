"""A tiny random-weight pipeline shaped like DeepFloyd IF, for tests and for a build without IF.

Same classes, configs and file layout as the real stage I / stage II (UNet2DConditionModel with
IF's block types, text addition embedding and 6 output channels; IF's schedulers; a T5 encoder
and tokenizer in stage I), only a few thousand times smaller and untrained: what it draws is
noise-like. Its folders carry a model card saying so, which the backend prints as its
description. The embeddings file holds the tiny T5's embeddings of the prompts, so the file
and `text_encoder="t5"` agree.

    python -m diffusion_lab.backends.tiny_if FOLDER [--seed 0]

writes FOLDER/stage_1, FOLDER/stage_2 and FOLDER/prompt_embeds.pth and prints the environment
that points `make site BACKEND=deepfloyd` at them.
"""

from __future__ import annotations

import argparse
import shlex
import json
import math
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from diffusion_lab.backends.deepfloyd import MODEL_CARD_FILE, DeepFloydSettings
from diffusion_lab.backends.deepfloyd_prompts import COURSE_PROMPTS, save_prompt_embeddings_file
from diffusion_lab.backends.if_schedule import (
    IF_STAGE1_SCHEDULER_CONFIG,
    IF_STAGE2_IMAGE_NOISING_SCHEDULER_CONFIG,
    IF_STAGE2_SCHEDULER_CONFIG,
)
from diffusion_lab.seeding import make_generator

TOKENS = 77  # T5's padded length in IF, kept so shapes read as the real ones
EMBED_DIM = 32  # stands in for T5-XXL's 4096
STAGE1_SIZE = 32
STAGE2_SIZE = 64


def _unet_config(in_channels: int, sample_size: int, super_resolution: bool) -> dict:
    # diffusers' own IF test components, with the text width apart from the attention width
    # as in the real models, so the encoder_hid_proj path runs too.
    config = dict(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=6,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        cross_attention_dim=64,
        encoder_hid_dim=EMBED_DIM,
        attention_head_dim=8,
        addition_embed_type="text",
        addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift",
        act_fn="gelu",
    )
    if super_resolution:
        config.update(
            class_embed_type="timestep",  # stage II is told its input's noise level
            mid_block_scale_factor=1.414,
            time_embedding_act_fn="gelu",
            time_embedding_dim=32,
        )
    return config


@torch.no_grad()
def _randomize(model: nn.Module, generator: torch.Generator) -> None:
    """Redraw every weight from `generator` (PyTorch's default ranges), norms left at identity.

    The constructors' own init draws from the global RNG; redrawing makes the saved model a
    function of the seed alone.
    """
    for module in model.modules():
        if "Norm" in type(module).__name__:  # GroupNorm, LayerNorm, T5LayerNorm, ...
            continue
        for name, parameter in module.named_parameters(recurse=False):
            weight = module._parameters.get("weight")
            fan_in = weight[0].numel() if weight is not None and weight.dim() > 1 else parameter.numel()
            bound = 1.0 / math.sqrt(max(fan_in, 1))
            noise = torch.rand(parameter.shape, generator=generator, dtype=torch.float32)
            parameter.copy_((noise * 2 - 1) * bound)


def _unet(config: dict, generator: torch.Generator):
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):  # keep the constructors' init off the caller's RNG
        unet = UNet2DConditionModel(**config)
    _randomize(unet, generator)
    return unet.eval()


def _card(folder: Path, name: str, stage: str, seed: int) -> None:
    description = (
        f"a TINY RANDOM-WEIGHT TEST MODEL shaped like DeepFloyd IF {stage} (untrained, seed {seed},"
        f" diffusers classes and IF's scheduler config): its pictures are noise, not IF output"
    )
    (folder / MODEL_CARD_FILE).write_text(json.dumps({"name": name, "description": description}, indent=1))


def _tiny_tokenizer(prompts: Iterable[str]):
    """A word-level tokenizer over the prompts' words that, like T5's, ends every text with </s>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted({word for prompt in prompts for word in prompt.lower().split()})
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{word: i + 3 for i, word in enumerate(words)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=TOKENS
    )


def _tiny_text_encoder(vocab_size: int, generator: torch.Generator):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size, d_model=EMBED_DIM, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
        relative_attention_num_buckets=8, dropout_rate=0.0, feed_forward_proj="gated-gelu",
    )
    with torch.random.fork_rng(devices=[]):
        encoder = T5EncoderModel(config)
    _randomize(encoder, generator)
    return encoder.eval()


@torch.no_grad()
def _embed_all(stage1, prompts: Iterable[str]) -> dict[str, torch.Tensor]:
    """The embeddings file holds exactly what the tiny T5 makes of each prompt, as the course's did."""
    return {
        prompt: stage1.encode_prompt(prompt, do_classifier_free_guidance=False, device=torch.device("cpu"))[0]
        for prompt in dict.fromkeys(["", *prompts])
    }


def save_tiny_if_pipeline(
    folder: str | Path,
    seed: int = 0,
    prompts: Iterable[str] = COURSE_PROMPTS,
    *,
    with_stage2: bool = True,
    stage1_size: int = STAGE1_SIZE,
    stage2_size: int = STAGE2_SIZE,
) -> DeepFloydSettings:
    """Builds and saves the tiny IF pipelines and an embeddings file; returns settings that load them.

    Stage I is 32x32 and stage II 64x64 by default (IF: 64 and 256), cheap enough for a CPU.
    """
    from diffusers import DDPMScheduler, IFPipeline, IFSuperResolutionPipeline

    folder = Path(folder)
    prompts = list(prompts)
    tokenizer = _tiny_tokenizer([*COURSE_PROMPTS, *prompts])
    stage1 = IFPipeline(
        tokenizer=tokenizer,
        text_encoder=_tiny_text_encoder(len(tokenizer), make_generator(seed, "tiny-if-t5")),
        unet=_unet(_unet_config(3, stage1_size, False), make_generator(seed, "tiny-if-stage1")),
        scheduler=DDPMScheduler(**IF_STAGE1_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        requires_safety_checker=False,
    )
    stage1.save_pretrained(folder / "stage_1")
    _card(folder / "stage_1", f"tiny-random-if-seed{seed}", "stage I", seed)

    stage2_folder = None
    if with_stage2:
        stage2 = IFSuperResolutionPipeline(
            tokenizer=None,
            text_encoder=None,
            unet=_unet(_unet_config(6, stage2_size, True), make_generator(seed, "tiny-if-stage2")),
            scheduler=DDPMScheduler(**IF_STAGE2_SCHEDULER_CONFIG),
            image_noising_scheduler=DDPMScheduler(**IF_STAGE2_IMAGE_NOISING_SCHEDULER_CONFIG),
            safety_checker=None,
            feature_extractor=None,
            watermarker=None,
            requires_safety_checker=False,
        )
        stage2_folder = folder / "stage_2"
        stage2.save_pretrained(stage2_folder)
        _card(stage2_folder, f"tiny-random-if-sr-seed{seed}", "stage II", seed)

    embeddings = save_prompt_embeddings_file(folder / "prompt_embeds.pth", _embed_all(stage1, prompts))
    return DeepFloydSettings(
        stage1=str((folder / "stage_1").resolve()),
        stage2=str(stage2_folder.resolve()) if stage2_folder else None,
        prompt_embeds_file=str(embeddings.resolve()),
        text_encoder="none",
        variant=None,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompt", action="append", help="extra prompt to embed (repeatable)")
    args = parser.parse_args(argv)
    settings = save_tiny_if_pipeline(args.folder, args.seed, [*COURSE_PROMPTS, *(args.prompt or [])])
    for key, value in settings.to_env().items():
        print(f"export {key}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
