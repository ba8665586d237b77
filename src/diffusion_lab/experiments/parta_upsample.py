"""Stage II: Part A's 64x64 results upsampled to 256x256, each conditioned on its prompt.

A figure's images are handed over as a tensor; the run is keyed by their sha256 and the run
that made them, so new images (or a new stage II) recompute it and nothing else does.
"""

from __future__ import annotations

import torch

from diffusion_lab.experiments.parta_backend import PartABackend
from diffusion_lab.hashing import tensor_sha256
from diffusion_lab.illusions import VIEWS
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run


def upsampled(
    ctx: BuildContext,
    handle: PartABackend,
    source: RunRecord,
    images: torch.Tensor,
    prompts: list[str],
    view: str | None = None,
) -> RunRecord:
    """`images` (B, 3, 64, 64) of the run `source`, through stage II with one prompt per image;
    with `view` (an illusions.VIEWS name) also the upsampled images seen through it."""
    if not handle.has_stage2:
        raise ValueError(f"the {handle.name} backend has no stage II upsampler")
    if len(prompts) != images.shape[0]:
        raise ValueError(f"one prompt per image: {images.shape[0]} images, {len(prompts)} prompts")
    params = {"model": handle.identity, "source": source.key,
              "images_sha256": tensor_sha256(images), "prompts": list(prompts), "view": view}

    def compute(scratch: Scratch):
        result = handle.upsample(images, list(prompts), scratch.generator("stage2")).cpu().float()
        stored = {"images": result}
        if view is not None:
            stored["viewed"] = VIEWS[view].apply(result)
        scratch.save("upsampled.pt", stored)
        return {"data_range": list(handle.data_range), "size": list(result.shape[-2:])}

    return cached_run(ctx, "parta/stage2-upsample", params, compute, backend=handle.name)
