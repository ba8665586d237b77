"""Image editing with the one denoising loop: SDEdit, inpainting, text-conditional image-to-image.

Images come in the model's data space (`model.data_range`), shaped (N, C, H, W) like its samples.
Guidance, x0 clipping, callbacks and progress pass through `**loop_options` to
`sampling.iterative_denoise`.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from diffusion_lab import schedule, seeding
from diffusion_lab.backends.base import NoiseModel
from diffusion_lab.sampling import draw_noise, iterative_denoise


def _to_model(model: NoiseModel, image: torch.Tensor) -> torch.Tensor:
    return image.to(device=model.device, dtype=model.dtype)


def sdedit(
    model: NoiseModel,
    image: torch.Tensor,
    i_start: int,
    condition: Any,
    generator: torch.Generator,
    *,
    timesteps: list[int] | None = None,
    **loop_options,
) -> torch.Tensor:
    """SDEdit: noise `image` to timesteps[i_start] with the forward process, then denoise.
    A small i_start means much noise and a free edit; a large one stays close to the image."""
    timesteps = model.strided_timesteps() if timesteps is None else list(timesteps)
    x_t = schedule.forward(_to_model(model, image), timesteps[i_start], model.alphas_cumprod, generator)
    return iterative_denoise(model, x_t, timesteps, i_start, condition, generator, **loop_options)


def sdedit_series(
    model: NoiseModel,
    image: torch.Tensor,
    i_starts: Sequence[int],
    condition: Any,
    seed: int,
    name: str,
    **sdedit_options,
) -> dict[int, torch.Tensor]:
    """SDEdit at each i_start (section 1.7 uses 1, 3, 5, 7, 10, 20). Each edit draws from its own
    generator, derived from (seed, name, i_start), so any one of them reproduces on its own."""
    return {
        i_start: sdedit(
            model,
            image,
            i_start,
            condition,
            seeding.make_generator(seed, f"{name}/i_start={i_start}"),
            **sdedit_options,
        )
        for i_start in i_starts
    }


def text_image_to_image(
    model: NoiseModel,
    image: torch.Tensor,
    prompt: str,
    i_starts: Sequence[int],
    seed: int,
    name: str,
    **sdedit_options,
) -> dict[int, torch.Tensor]:
    """SDEdit guided by `prompt` instead of the generic one (section 1.7.3)."""
    return sdedit_series(model, image, i_starts, model.encode(prompt), seed, name, **sdedit_options)


def inpaint(
    model: NoiseModel,
    image: torch.Tensor,
    mask: torch.Tensor,
    condition: Any,
    generator: torch.Generator,
    *,
    timesteps: list[int] | None = None,
    i_start: int = 0,
    **loop_options,
) -> torch.Tensor:
    """Fill where mask == 1, keep `image` where mask == 0 (RePaint-style, section 1.7.2).

    After every step x_t' <- m x_t' + (1 - m) forward(image, t'): the known pixels are re-imposed
    *noised to t'* with fresh noise, so they match the noise level of the rest; the last t' is -1,
    where forward is the clean image, so the result equals `image` exactly outside the mask.
    i_start = 0 starts from pure noise; a later i_start starts from the noised image (SDEdit).
    """
    timesteps = model.strided_timesteps() if timesteps is None else list(timesteps)
    image = _to_model(model, image)
    mask = _to_model(model, mask)
    if i_start == 0:
        x = draw_noise(image.shape, generator, model.device, model.dtype)
    else:
        x = schedule.forward(image, timesteps[i_start], model.alphas_cumprod, generator)

    def keep_known(x_prev: torch.Tensor, t_prev: int) -> torch.Tensor:
        return mask * x_prev + (1 - mask) * schedule.forward(image, t_prev, model.alphas_cumprod, generator)

    return iterative_denoise(
        model, x, timesteps, i_start, condition, generator, project=keep_known, **loop_options
    )
