"""Stage II: Part A's 64x64 results upsampled to 256x256, each conditioned on its prompt.

A figure's images are handed over as a tensor; the run is keyed by their sha256 and the run
that made them, so new images (or a new stage II) recompute it and nothing else does.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def figure_upsample(
    ctx: BuildContext,
    handle: PartABackend,
    source: RunRecord,
    images: Sequence[torch.Tensor],
    prompts: Sequence[str],
    view: str | None = None,
) -> RunRecord | None:
    """The stage II run of a figure's `images` (each (3, H, W) or (1, 3, H, W)) of the run `source`,
    one prompt each, with `view` as in `upsampled`; None when the build does not upsample figures
    (DIFFUSION_LAB_IF_UPSAMPLE unset, or no stage II configured)."""
    if not handle.upsample_figures:
        return None
    batch = torch.cat([image.reshape(1, *image.shape[-3:]) for image in images])
    return upsampled(ctx, handle, source, batch, list(prompts), view)


def sdedit_upsample(ctx: BuildContext, handle: PartABackend, sdedit: RunRecord) -> RunRecord | None:
    """The stage II run of the edits an SDEdit run's figure shows, in i_start order, each with the
    run's prompt; None when the build does not upsample figures."""
    if not handle.upsample_figures:
        return None
    edits = sdedit.load("sdedit.pt")["edits"]
    i_starts = sdedit.metrics["shown_i_starts"]
    return figure_upsample(ctx, handle, sdedit, [edits[i] for i in i_starts],
                           [sdedit.params["prompt"]] * len(i_starts))


def inpainting_upsample(ctx: BuildContext, handle: PartABackend, inpainting: RunRecord) -> RunRecord | None:
    """The stage II run of an inpainting run's result, with the run's prompt; None when the build does
    not upsample figures."""
    if not handle.upsample_figures:
        return None
    result = inpainting.load("inpaint.pt")["result"]
    return figure_upsample(ctx, handle, inpainting, [result], [inpainting.params["prompt"]])
