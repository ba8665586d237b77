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
from diffusion_lab.sampling import draw_noise, guided_estimate, iterative_denoise


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
    A small i_start means much noise and a free edit; a large one stays close to the image.

    Args:
        image: (N, C, H, W) in the model's range ([-1, 1] for DeepFloyd IF, [0, 1] for the MNIST
            UNets), any device and dtype: it is moved to the model's.
        i_start: index into `timesteps` (descending), 0 <= i_start < len(timesteps).

    Returns:
        (N, C, H, W) on the model's device and dtype, the last x0 estimate (not clipped)."""
    timesteps = model.strided_timesteps() if timesteps is None else list(timesteps)
    x_t = schedule.forward(_to_model(model, image), timesteps[i_start], model.alphas_cumprod, generator)
    return iterative_denoise(model, x_t, timesteps, i_start, condition, generator, **loop_options)



def _one_per_image(condition: Any, n: int) -> Any:
    """A tensor condition of one row repeated for n images (the ladder's batch grows as edits join)."""
    if isinstance(condition, torch.Tensor) and condition.shape[0] == 1:
        return condition.expand(n, *condition.shape[1:])
    return condition


@torch.no_grad()
def sdedit_ladder(
    model: NoiseModel,
    image: torch.Tensor,
    i_starts: Sequence[int],
    condition: Any,
    generator: torch.Generator,
    *,
    timesteps: list[int] | None = None,
    guidance: float | None = None,
    uncond: Any = None,
    x0_clip: schedule.X0Clip | None = None,
) -> dict[int, torch.Tensor]:
    """SDEdit of one image (1, C, H, W) at every i_start, in one batch: {i_start: (1, C, H, W)}.

    Edits that start at different i_starts share every timestep after their start, so the loop
    runs once from the smallest i_start and each edit joins the batch at its own start (noised
    there by the forward process): one network call per timestep serves every edit begun by then.
    With a single i_start this is `sdedit` draw for draw; with several, the draws interleave.
    """
    timesteps = schedule.check_timesteps(
        model.strided_timesteps() if timesteps is None else list(timesteps), len(model.alphas_cumprod)
    )
    starts = sorted(set(int(i) for i in i_starts))
    if not starts or starts[0] < 0 or starts[-1] >= len(timesteps):
        raise ValueError(f"i_starts must index timesteps (0..{len(timesteps) - 1}), got {list(i_starts)}")
    image = _to_model(model, image)
    if guidance is not None and uncond is None:
        uncond = model.encode("")
    x = image[:0]
    for i in range(starts[0], len(timesteps)):
        t = timesteps[i]
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        if i in starts:
            x = torch.cat([x, schedule.forward(image, t, model.alphas_cumprod, generator)])
        out = guided_estimate(model, _one_per_image(condition, x.shape[0]), uncond, guidance)(x, t)
        noise = draw_noise(x.shape, generator, out.eps.device, out.eps.dtype) if t > 0 else None
        x = schedule.step(x, out.eps, t, t_prev, model.alphas_cumprod, noise=noise,
                          variance_type=model.variance_type, predicted_variance=out.variance,
                          x0_clip=x0_clip).prev_sample
    return {i: x[k:k + 1] for k, i in enumerate(starts)}


def correlation(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Pearson's r between the pixels of each pair of images, (N, ...) x (N, ...) -> (N,): 1 for
    the same picture up to brightness and contrast, about 0 for unrelated ones. How much of its
    input an edit kept, the same way on any backend."""
    a = first.flatten(1).double()
    b = second.flatten(1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)

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

    Args:
        image: (N, C, H, W) in the model's range, as for `sdedit`.
        mask: (N or 1, C or 1, H, W), exactly 0 (keep) or 1 (regenerate).

    Returns:
        (N, C, H, W) on the model's device and dtype; equal to `image` where mask == 0.
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
